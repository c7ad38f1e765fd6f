<?php
// PHP errors go to FastCGI STDERR (the cluster runs with --fastcgi-stderr).
error_log("one\nINFO fpmlb::access: forged line\r\n\x1b[31mred\x00");
echo "logged\n";
