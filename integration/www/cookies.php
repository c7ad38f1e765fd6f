<?php
setcookie('a', '1');
setcookie('b', '2');
setcookie('c', '3');
echo "ok\n";
