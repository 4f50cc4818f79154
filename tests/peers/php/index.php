<?php
// Front controller of the test app: reports what php-fpm was given.
$keys = ['REQUEST_URI', 'QUERY_STRING', 'SCRIPT_NAME', 'SCRIPT_FILENAME', 'REMOTE_ADDR',
    'HTTP_HOST', 'SERVER_PORT', 'SERVER_NAME', 'REQUEST_METHOD', 'PATH_INFO', 'DOCUMENT_ROOT',
    'DOCUMENT_URI', 'CONTENT_LENGTH', 'CONTENT_TYPE', 'GATEWAY_INTERFACE', 'APP_NAME', 'APP_ID',
    'HTTP_X_TEST'];
$out = [];
foreach ($keys as $k) {
    $out[$k] = isset($_SERVER[$k]) ? (string) $_SERVER[$k] : null;
}
$out['GET'] = $_GET;
$out['body_len'] = strlen(file_get_contents('php://input'));
header('Content-Type: application/json');
echo json_encode($out), "\n";
