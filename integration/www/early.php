<?php
// PHP's "answer early" idiom, from before fastcgi_finish_request(): the
// whole response with its Content-Length, flushed, then the script works
// on for ?ms= milliseconds (default 2500) while the client has its answer.
// ?bytes= is the body's size (default 5).
ignore_user_abort(true);
$ms = isset($_GET['ms']) ? max(0, (int) $_GET['ms']) : 2500;
$bytes = isset($_GET['bytes']) ? max(1, (int) $_GET['bytes']) : 5;
$body = str_repeat('e', $bytes);
header('Content-Length: ' . strlen($body));
echo $body;
while (ob_get_level() > 0) {
    ob_end_flush();
}
flush();
usleep($ms * 1000);
