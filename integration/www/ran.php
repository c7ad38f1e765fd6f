<?php
// ran.php?tag=T: records that it ran, one line "T" per request in the
// node's /tmp/ran.log (DIR/webNN/root/tmp/ran.log on the host, the node
// being chrooted), so that a test can assert a refused request never
// reached PHP. Answers with the node's name.
$tag = isset($_GET['tag']) ? preg_replace('/[^A-Za-z0-9_.-]/', '', (string) $_GET['tag']) : '-';
file_put_contents('/tmp/ran.log', $tag . "\n", FILE_APPEND | LOCK_EX);
echo 'ran ', $tag, ' on ', getenv('NODE_NAME'), "\n";
