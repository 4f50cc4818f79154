<?php
// A slow request for the upstream queue tests: appends "start T PID" and "end T PID"
// (microseconds) to the file ?log= names, sleeping ?ms= milliseconds in between, so a
// test can count how many requests php-fpm ran at once.
$log = $_GET['log'] ?? '';
$ms = (int) ($_GET['ms'] ?? 200);
if ($log !== '') {
    file_put_contents($log, sprintf("start %.6f %d\n", microtime(true), getmypid()), FILE_APPEND | LOCK_EX);
}
usleep($ms * 1000);
if ($log !== '') {
    file_put_contents($log, sprintf("end %.6f %d\n", microtime(true), getmypid()), FILE_APPEND | LOCK_EX);
}
echo "slept {$ms} ms in ", getmypid(), "\n";
