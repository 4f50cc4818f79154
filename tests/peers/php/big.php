<?php
// ?bytes=N: N bytes of the testkit's big_byte() pattern, byte i = (i * 7 + 3) % 251,
// written in blocks whose length is a multiple of the period (251).
$n = (int) ($_GET['bytes'] ?? 0);
$period = '';
for ($i = 0; $i < 251; $i++) {
    $period .= chr(($i * 7 + 3) % 251);
}
$block = str_repeat($period, 256);
header('Content-Type: application/octet-stream');
$left = $n;
while ($left >= strlen($block)) {
    echo $block;
    $left -= strlen($block);
}
echo substr($block, 0, $left);
