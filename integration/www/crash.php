<?php
// The worker dies under the request after ?ms= milliseconds (default 0),
// as it does when a PHP extension crashes or php-fpm's
// request_terminate_timeout kills it: no END_REQUEST, the connection
// closed. For tests of what counts against a backend.
usleep(max(0, (int) ($_GET['ms'] ?? 0)) * 1000);
posix_kill(getmypid(), 9);
