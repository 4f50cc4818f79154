<?php
// A response header of ?bytes=N bytes (default 8000): over the default 4k fastcgi_buffer_size.
header('X-Big: ' . str_repeat('a', (int) ($_GET['bytes'] ?? 8000)));
echo "big header\n";
