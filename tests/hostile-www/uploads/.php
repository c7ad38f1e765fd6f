<?php
// An "uploaded" file named ".php" (all extension, no name): php-fpm's
// walk-back runs it as PHP (`security.limit_extensions` matches the end of
// the name). It must never run through fpmlb; it leaves /tmp/phar-ran when
// it does, as avatar.phar.
file_put_contents('/tmp/phar-ran', 'ran');
echo "DOTPHP RAN\n";
