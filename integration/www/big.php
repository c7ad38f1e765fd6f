<?php
// big.php?bytes=N[&cl=1]: exactly N bytes (default 65536) of "0123456789abcdef"
// repeated, written and flushed in 8 KiB pieces. cl=1 also sends Content-Length;
// xab=no (or yes) sends X-Accel-Buffering with that value.
$n = isset($_GET['bytes']) ? max(0, (int) $_GET['bytes']) : 65536;
header('Content-Type: application/octet-stream');
if (isset($_GET['xab']) && in_array($_GET['xab'], ['yes', 'no'], true)) {
    header('X-Accel-Buffering: ' . $_GET['xab']);
}
if (!empty($_GET['cl'])) {
    header('Content-Length: ' . $n);
}
while (ob_get_level() > 0) {
    ob_end_flush();
}
$piece = str_repeat('0123456789abcdef', 512); // 8192 bytes
while ($n > 0) {
    $k = min($n, 8192);
    echo $k === 8192 ? $piece : substr($piece, 0, $k);
    flush();
    $n -= $k;
}
