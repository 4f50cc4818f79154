<?php
// Sleeps ?s=N seconds before answering.
sleep((int) ($_GET['s'] ?? 1));
echo "slept\n";
