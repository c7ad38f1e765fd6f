<?php
echo 'hello from ', getenv('NODE_NAME'), "\n";
