<?php
// Reads the session without holding it: what applications do for a page that
// only shows session data (session_start's read_and_close).
session_start(['read_and_close' => true]);
header('Content-Type: application/json');
echo json_encode([
    'node' => getenv('NODE_NAME'),
    'id' => session_id(),
    'TEST' => $_SESSION['TEST'] ?? null,
], JSON_UNESCAPED_SLASHES), "\n";
