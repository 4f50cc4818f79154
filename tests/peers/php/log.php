<?php
// error_log() goes to FastCGI stderr (no error_log file is configured).
error_log('junction-stderr-marker ' . ($_GET['m'] ?? ''));
echo "logged\n";
