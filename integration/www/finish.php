<?php
// Symfony's and Laravel's way to answer early: the response goes out at
// fastcgi_finish_request() (php-fpm sends END_REQUEST), then the script
// works on for ?ms= milliseconds (at most 10000; default 0) while its
// worker stays busy. The body is the worker's pid.
$ms = isset($_GET['ms']) ? min(10000, max(0, (int) $_GET['ms'])) : 0;
echo getmypid(), "\n";
fastcgi_finish_request();
usleep($ms * 1000);
