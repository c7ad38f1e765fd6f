<?php
// html.php?bytes=N[&cl=1][&flush=1][&type=T][&etag=1][&cache=V]: an HTML page of
// exactly N bytes (default 65536), the same bytes on every request: a
// product listing built from a fixed vocabulary with a seeded generator, so
// that it compresses like real HTML (about 5:1 with gzip -5), not like a
// repeated pattern. For the compression tests and `make bench`.
//   cl=1     also send Content-Length
//   flush=1  write and flush it in 8 KiB pieces (a streamed response)
//   type=T   Content-Type T instead of text/html; charset=UTF-8
//   etag=1   send ETag: "html-N"
//   cache=V  send Cache-Control: V
//   gz=1     send it gzip-compressed, with Content-Encoding: gzip
//   wait=TAG with flush=1: after the first half, wait (30 s at most) until
//            the file /tmp/TAG exists, then send the rest (a test creates it
//            once it has seen the first half)
// From the command line: php html.php N (the bytes on stdout).
$n = isset($_GET['bytes']) ? max(0, (int) $_GET['bytes']) : (int) ($argv[1] ?? 65536);
if (PHP_SAPI !== 'cli') {
    header('Content-Type: ' . ($_GET['type'] ?? 'text/html; charset=UTF-8'));
    if (!empty($_GET['cl'])) {
        header('Content-Length: ' . $n);
    }
    if (!empty($_GET['etag'])) {
        header('ETag: "html-' . $n . '"');
    }
    if (isset($_GET['cache'])) {
        header('Cache-Control: ' . $_GET['cache']);
    }
}

function page(int $n): string
{
    mt_srand(20240613);
    $words = ['alpine', 'basalt', 'cedar', 'delta', 'ember', 'fjord', 'granite', 'harbor', 'indigo',
        'juniper', 'kelp', 'lumen', 'meadow', 'nectar', 'orchid', 'pebble', 'quartz', 'river', 'sierra',
        'timber', 'umber', 'violet', 'willow', 'xenon', 'yarrow', 'zephyr', 'organic', 'cotton', 'linen',
        'wool', 'leather', 'ceramic', 'steel', 'walnut', 'oak', 'bamboo', 'recycled', 'handmade',
        'limited', 'edition', 'classic', 'modern', 'vintage', 'compact', 'deluxe', 'premium', 'travel'];
    $cats = ['kitchen', 'garden', 'outdoor', 'office', 'bedroom', 'bath', 'lighting', 'storage'];
    $w = fn () => $words[mt_rand(0, count($words) - 1)];
    $out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        . "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        . "<title>Shop: all products</title>\n<link rel=\"stylesheet\" href=\"/assets/app.css?v=31\">\n"
        . "<script src=\"/assets/app.js?v=31\" defer></script>\n</head>\n<body class=\"catalog\">\n"
        . "<header class=\"site-header\"><nav><ul>\n";
    foreach ($cats as $c) {
        $out .= "<li><a href=\"/category/$c\" class=\"nav-link\">" . ucfirst($c) . "</a></li>\n";
    }
    $out .= "</ul></nav></header>\n<main id=\"content\">\n<ul class=\"products\">\n";
    $id = 1000;
    while (strlen($out) < $n) {
        $id += mt_rand(1, 97);
        $name = ucfirst($w()) . ' ' . $w() . ' ' . $w();
        $price = mt_rand(199, 99999) / 100;
        $cat = $cats[mt_rand(0, count($cats) - 1)];
        $out .= "<li class=\"product card\" data-id=\"$id\" data-category=\"$cat\">\n"
            . "  <a href=\"/product/$id-" . strtolower(str_replace(' ', '-', $name)) . "\">\n"
            . "    <img src=\"/media/$id/thumb.webp\" alt=\"$name\" width=\"320\" height=\"240\" loading=\"lazy\">\n"
            . "    <h2 class=\"product-title\">$name</h2>\n  </a>\n"
            . '  <p class="description">A ' . $w() . ' ' . $w() . ' piece in ' . $w() . ' and ' . $w()
            . ', made for ' . $w() . ' days. Ships in ' . mt_rand(1, 9) . " days.</p>\n"
            . '  <span class="price" data-currency="EUR">' . number_format($price, 2) . " &euro;</span>\n"
            . "  <button type=\"button\" class=\"btn btn-primary add-to-cart\" data-id=\"$id\">Add to cart</button>\n"
            . "</li>\n";
    }
    return substr($out, 0, $n);
}

$page = page($n);
if (PHP_SAPI !== 'cli' && !empty($_GET['gz'])) {
    header('Content-Encoding: gzip');
    $page = gzencode($page, 6);
}
if (PHP_SAPI === 'cli' || empty($_GET['flush'])) {
    echo $page;
    return;
}
while (ob_get_level() > 0) {
    ob_end_flush();
}
$wait = isset($_GET['wait']) && preg_match('/^[a-z0-9-]{1,64}$/', $_GET['wait']) ? '/tmp/' . $_GET['wait'] : null;
$half = intdiv(strlen($page), 2);
$sent = 0;
foreach (str_split($page, 8192) as $piece) {
    if ($wait !== null && $sent >= $half) {
        for ($i = 0; $i < 300 && !file_exists($wait); $i++) {
            usleep(100000);
        }
        $wait = null;
    }
    echo $piece;
    flush();
    $sent += strlen($piece);
}
