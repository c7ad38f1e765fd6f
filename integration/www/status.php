<?php
if (isset($_GET['code']) && $_GET['code'] !== '') {
    http_response_code((int) $_GET['code']);
}
if (isset($_GET['location']) && $_GET['location'] !== '') {
    header('Location: ' . $_GET['location']);
}
echo "status\n";
