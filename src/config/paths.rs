//! What a path is to PHP and to the static files, as names alone: PHP
//! source, and dotfiles. Pure; the config checks its error pages with it,
//! the nginx importer what it translates, and `http::files` what it sends.

/// Extensions that are PHP source, whatever the server's handler list: PHP
/// never gets them as scripts from fpmlb (only `.php` is split), and they
/// are never sent as files (Apache's and distributions' PHP handlers take
/// `.phtml`, `.php3`..`.php8`, `.phar`; `.phps` is highlighted source).
pub const PHP_SOURCE_EXTENSIONS: &[&str] = &[
    "php", "php3", "php4", "php5", "php7", "php8", "phtml", "pht", "phps", "phar",
];

/// Whether a path has a segment that starts with `.`.
pub fn has_dot_segment(path: &[u8]) -> bool {
    path.split(|&b| b == b'/').any(|s| s.first() == Some(&b'.'))
}

/// Whether the last segment of `uri` names PHP source: an extension of
/// [`PHP_SOURCE_EXTENSIONS`] anywhere after its first dot (`x.php`,
/// `x.PHTML`, `x.php.bak`, `x.php~`, `x.php.swp`: editors' and admins'
/// copies leak source as surely as the script itself).
pub fn is_php_source(uri: &[u8]) -> bool {
    let name = uri.rsplit(|&b| b == b'/').next().unwrap_or(uri);
    name.split(|&b| b == b'.').skip(1).any(|ext| {
        let ext = ext.strip_suffix(b"~").unwrap_or(ext);
        PHP_SOURCE_EXTENSIONS
            .iter()
            .any(|p| ext.eq_ignore_ascii_case(p.as_bytes()))
    })
}
