<?php
// A multipart upload: the md5 of the uploaded file; any other body: the md5 of the raw body.
header('Content-Type: application/json');
if (isset($_FILES['file'])) {
    $f = $_FILES['file'];
    echo json_encode([
        'kind' => 'multipart',
        'error' => $f['error'],
        'name' => $f['name'],
        'size' => $f['error'] === UPLOAD_ERR_OK ? filesize($f['tmp_name']) : -1,
        'md5' => $f['error'] === UPLOAD_ERR_OK ? md5_file($f['tmp_name']) : '',
    ]), "\n";
} else {
    $body = file_get_contents('php://input');
    echo json_encode([
        'kind' => 'raw',
        'content_length' => $_SERVER['CONTENT_LENGTH'] ?? null,
        'size' => strlen($body),
        'md5' => md5($body),
    ]), "\n";
}
