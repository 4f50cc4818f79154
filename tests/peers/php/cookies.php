<?php
// Three Set-Cookie headers.
setcookie('first', 'one');
setcookie('second', 'two', ['path' => '/shop']);
setcookie('third', 'three', ['httponly' => true]);
echo "three cookies\n";
