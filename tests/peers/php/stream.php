<?php
// Echo, flush, then wait (at most 10 s) for the file ?flag=PATH the test creates once it
// has read part one; then the rest. ?xab=no sends X-Accel-Buffering: no.
header('Content-Type: text/plain');
if (isset($_GET['xab'])) {
    header('X-Accel-Buffering: ' . $_GET['xab']);
}
echo "part one\n";
flush();
$flag = $_GET['flag'] ?? '';
$deadline = microtime(true) + 10;
while (!file_exists($flag) && microtime(true) < $deadline) {
    usleep(10000);
    clearstatcache();
}
echo file_exists($flag) ? "part two\n" : "timed out\n";
