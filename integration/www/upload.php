<?php
$len = 0;
$ctx = hash_init('sha256');
$in = fopen('php://input', 'rb');
if ($in !== false) {
    while (!feof($in)) {
        $chunk = fread($in, 65536);
        if ($chunk === false || $chunk === '') {
            break;
        }
        $len += strlen($chunk);
        hash_update($ctx, $chunk);
    }
    fclose($in);
}
header('Content-Type: application/json');
echo json_encode(['len' => $len, 'sha256' => hash_final($ctx)]), "\n";
