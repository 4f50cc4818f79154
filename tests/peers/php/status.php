<?php
// header() status codes: ?code=N answers N with a body naming it.
$code = (int) ($_GET['code'] ?? 200);
http_response_code($code);
header('X-Php-Status: ' . $code);
echo "php says $code\n";
