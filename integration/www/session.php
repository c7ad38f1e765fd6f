<?php
session_start();
// What session_start() warned about, e.g. "Failed to decode session object".
$warning = error_get_last()['message'] ?? null;
$new = false;
if (!isset($_SESSION['TEST'])) {
    $_SESSION['TEST'] = random_int(1, PHP_INT_MAX);
    $new = true;
}
header('Content-Type: application/json');
echo json_encode([
    'node' => getenv('NODE_NAME'),
    'id' => session_id(),
    'TEST' => $_SESSION['TEST'],
    'new' => $new,
    'handler' => ini_get_all('session')['session.save_handler']['local_value'],
    'warning' => $warning,
], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
