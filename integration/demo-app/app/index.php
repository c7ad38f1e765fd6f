<?php
// The demo's small app (integration/demo.sh): its page runs on a php-fpm
// node; its stylesheet, script and logo are files fpmlb serves itself from
// static.root, with ETag, ranges and 304s, without asking php-fpm.
session_start();
$_SESSION['visits'] = ($_SESSION['visits'] ?? 0) + 1;
$node = htmlspecialchars((string) getenv('NODE_NAME'));
?><!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>fpmlb demo app</title>
<link rel="stylesheet" href="/app/style.css">
<script src="/app/app.js" defer></script>
</head>
<body>
<header><img src="/app/logo.svg" alt="" width="48" height="48"><h1>fpmlb demo app</h1></header>
<p>This page came from php-fpm (<code><?= $node ?></code>, pid <?= getmypid() ?>).
Visits in this session: <strong><?= (int) $_SESSION['visits'] ?></strong> (the session follows you from node to node).</p>
<p>The stylesheet, the script and the logo came from fpmlb's <code>static.root</code>.
<span id="js">The script did not run.</span></p>
</body>
</html>
