<?php
// Writes N lines to the worker's stderr (collected by php-fpm:
// catch_workers_output = yes, i.e. FastCGI STDERR records are NOT used).
$n = isset($_GET['n']) ? max(0, (int) $_GET['n']) : 1;
for ($i = 1; $i <= $n; $i++) {
    file_put_contents('php://stderr', 'stderr line ' . $i . ' from ' . getenv('NODE_NAME') . "\n");
}
echo "done\n";
