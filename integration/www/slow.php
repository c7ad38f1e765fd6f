<?php
$ms = isset($_GET['ms']) ? max(0, (int) $_GET['ms']) : 1000;
usleep($ms * 1000);
echo 'slow ', getenv('NODE_NAME'), "\n";
