<?php
// Debian layout test app: reports the CGI variables the PHP block gave php-fpm.
$out = ['script' => basename(__FILE__)];
foreach (['SCRIPT_NAME', 'PATH_INFO', 'SCRIPT_FILENAME', 'QUERY_STRING', 'REQUEST_URI',
    'DOCUMENT_URI'] as $k) {
    $out[$k] = isset($_SERVER[$k]) ? (string) $_SERVER[$k] : null;
}
header('Content-Type: application/json');
echo json_encode($out), "\n";
