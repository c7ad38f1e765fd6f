<?php
// A real index that logs php-fpm's words and answers 404 itself: the
// front controller must not take over (only php-fpm's own record means
// "no script here").
error_log('Primary script unknown');
http_response_code(404);
echo "trap's own 404\n";
