<?php
// The script's own Server, Date and X-Pad (nginx passes them from FastCGI).
header("Server: php-app");
header("Date: Mon, 01 Jan 2024 00:00:00 GMT");
header("X-Pad: pad");
echo "own headers\n";
