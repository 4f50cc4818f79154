<?php
// A redirect: header('Location: …') makes PHP answer 302 (or ?code=301).
if (isset($_GET['code'])) {
    header('Location: /landing?from=php', true, (int) $_GET['code']);
} else {
    header('Location: /landing?from=php');
}
echo "redirecting\n";
