<?php
// A script whose answer HTTP cannot carry, chosen by ?a=. Each run is
// counted in /tmp/ran-<t> on the node (?t=, letters and digits), so a test
// can tell how often it ran: a 1xx POST must run once, not once per backend.
$t = preg_replace('/[^A-Za-z0-9]/', '', $_GET['t'] ?? '');
if ($t !== '') {
    file_put_contents('/tmp/ran-' . $t, 'x', FILE_APPEND);
}
switch ($_GET['a'] ?? '') {
    case '100': http_response_code(100); break;
    case '103': header('Status: 103 Early Hints'); break;
    case 'status99': header('Status: 99 Low'); break;
    case 'statusabc': header('Status: abc'); break;
    case 'location-ctl': header("Location: /x\x01"); break;
    case 'header-del': header("X-Bad: a\x7fb"); break;
    case 'big-head':
        for ($i = 0; $i < 80; $i++) {
            header("X-Pad-$i: " . str_repeat('a', 1000));
        }
        break;
    case 'two-lengths':
        header('Content-Length: 3');
        header('Content-Length: 4', false);
        echo 'abc';
        exit;
}
echo "the script's body\n";
