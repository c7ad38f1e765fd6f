<?php
// What php-fpm made of the path: the walk-back test checks PATH_INFO after
// a real script still arrives whole.
header('Content-Type: text/plain');
echo $_SERVER['SCRIPT_NAME'], ' ', $_SERVER['PATH_INFO'] ?? '', "\n";
