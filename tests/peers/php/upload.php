<?php
// A multipart upload: the md5 of the uploaded file; any other body: the md5 of the raw body.
header('Content-Type: application/json');
// With a Content-Length, so a raw client can read the answer without decoding chunks.
function answer(array $a)
{
    $text = json_encode($a) . "\n";
    header('Content-Length: ' . strlen($text));
    echo $text;
}
if (isset($_FILES['file'])) {
    $f = $_FILES['file'];
    answer([
        'kind' => 'multipart',
        'error' => $f['error'],
        'name' => $f['name'],
        'size' => $f['error'] === UPLOAD_ERR_OK ? filesize($f['tmp_name']) : -1,
        'md5' => $f['error'] === UPLOAD_ERR_OK ? md5_file($f['tmp_name']) : '',
    ]);
} else {
    $body = file_get_contents('php://input');
    answer([
        'kind' => 'raw',
        'content_length' => $_SERVER['CONTENT_LENGTH'] ?? null,
        'size' => strlen($body),
        'md5' => md5($body),
    ]);
}
