<?php
// Declares ?declared= bytes and sends ?body= bytes of 'a'.
header('Content-Type: text/plain');
header('Content-Length: ' . (int) ($_GET['declared'] ?? 0));
$n = (int) ($_GET['body'] ?? 0);
while ($n > 0) {
    $k = min($n, 8192);
    echo str_repeat('a', $k);
    $n -= $k;
}
