<?php
// The upload pattern of client_body_in_file_only: the body's file named by the
// REQUEST_BODY_FILE param; what it holds, and php://input (php-fpm reads it from
// that file when the body did not come on stdin).
header('Content-Type: application/json');
$file = $_SERVER['REQUEST_BODY_FILE'] ?? '';
$stdin = file_get_contents('php://input');
$text = json_encode([
    'file' => $file,
    'exists' => $file !== '' && is_file($file),
    'md5' => ($file !== '' && is_file($file)) ? md5_file($file) : '',
    'stdin' => strlen($stdin),
    'content_length' => $_SERVER['CONTENT_LENGTH'] ?? '',
]) . "\n";
header('Content-Length: ' . strlen($text));
echo $text;
