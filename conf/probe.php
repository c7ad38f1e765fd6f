<?php
// fpmlb session probe: deploy on every php-fpm node OUTSIDE any document root
// (e.g. /usr/share/fpmlb/probe.php) and set health.probe_script to that path.
//
// fpmlb runs it over FastCGI with SCRIPT_FILENAME pointing here and the param
// FPMLB_PROBE set. Without that param it answers 404 "Not Found": a browser
// cannot send it (client headers only become HTTP_* params, and nginx's
// fastcgi_params never send it).
//
// Actions (param FPMLB_PROBE_ACTION, default "config"); every answer is JSON:
//   config   the node's effective (per-pool) session settings: session.*,
//            memcached.sess_*, memcache.*, redis.session.*, max_execution_time; loaded
//            extensions; registered save handlers; where each value comes from as far
//            as PHP can tell ("origin": the pool-wide value, the access level a
//            php_admin_value leaves, the php.ini value from get_cfg_var()); php.ini files
//            loaded; the .user.ini files the application's scripts get (param
//            FPMLB_DOCUMENT_ROOT, and FPMLB_APP_SCRIPT below it). Credentials in save
//            paths are replaced by "sha256:" + the first 16 hex digits of sha256(secret).
//            Also "php_fpm": cgi.fix_pathinfo and the files fpmlb uses to test the
//            pool's security.limit_extensions (see fpmlb_php_fpm_facts()).
//   write    session_start(), $_SESSION['fpmlb_probe'] = FPMLB_PROBE_TOKEN,
//            session_write_close(), then reads it back on this node ("readback"); returns
//            the session id (also in Set-Cookie).
//   read     with the session cookie (HTTP_COOKIE "<session.name>=<id>"): reads the
//            session without creating one (session.use_strict_mode is
//            turned off for the request so an unknown id is not replaced; if it cannot be,
//            the replacement session is destroyed again; for "files" the session file is
//            looked up first), returns found/value.
//   lock     with the session cookie: session_start(['read_and_close' => true]) and
//            nothing else, as applications do to read a session without holding it;
//            fpmlb then looks in the store for a lock left behind.
//   destroy  with the session cookie: destroys that session.
// With FPMLB_DOCUMENT_ROOT, the session actions first apply the settings of the
// application's .user.ini files (what php-fpm gives the application's scripts, not this
// one, which lives outside the document root), so the round trip runs as the application.
// PHP warnings never reach the output (nor the error log): they are collected and
// reported in "error", with save paths redacted. Responses carry "X-Fpmlb-Probe: 1".

declare(strict_types=1);

const FPMLB_PROBE_VERSION = 2;
const FPMLB_PROBE_KEY = 'fpmlb_probe';

// ---------------------------------------------------------------- gate

$fpmlbGate = $_SERVER['FPMLB_PROBE'] ?? null;
if (!is_string($fpmlbGate) || $fpmlbGate === '') {
    http_response_code(404);
    header('Content-Type: text/plain; charset=utf-8');
    echo "Not Found\n";
    exit;
}

// No warning may ever be printed; nothing is sent before we decide the headers.
@ini_set('display_errors', '0');
@ini_set('html_errors', '0');
ob_start();

/** Messages of PHP warnings and errors raised since the last fpmlb_take_errors(). Notices
 * and deprecations are kept apart ("notices" in the answers): they do not fail an action
 * (e.g. the files handler's garbage collection noticing it cannot list Debian's 1733
 * directory, or PHP 8.4 deprecating session.sid_length). */
$GLOBALS['fpmlb_errors'] = [];
$GLOBALS['fpmlb_notices'] = [];
set_error_handler(static function (int $no, string $msg, string $file = '', int $line = 0): bool {
    $minor = E_NOTICE | E_USER_NOTICE | E_DEPRECATED | E_USER_DEPRECATED;
    if (($no & $minor) !== 0) {
        $GLOBALS['fpmlb_notices'][] = $msg;
    } else {
        $GLOBALS['fpmlb_errors'][] = $msg;
    }
    return true; // handled: not displayed, not logged
});

function fpmlb_take_errors(): array
{
    $e = $GLOBALS['fpmlb_errors'];
    $GLOBALS['fpmlb_errors'] = [];
    return $e;
}

function fpmlb_error_string(array $errors): ?string
{
    $errors = array_values(array_unique(array_filter($errors, 'is_string')));
    return $errors === [] ? null : fpmlb_redact_message(implode('; ', $errors));
}

/** PHP's session warnings quote session.save_path ("Please verify that the current
 * setting of session.save_path is correct (...)"): redact the paths in messages too,
 * and any leftover "auth=..."-like parameter. */
function fpmlb_redact_message(string $msg): string
{
    $handler = fpmlb_save_handler();
    $paths = [
        [fpmlb_ini_local('session', 'session.save_path'), $handler],
        [fpmlb_ini_local('memcache', 'memcache.session_save_path'), 'memcache'],
    ];
    foreach ($paths as [$raw, $h]) {
        if (is_string($raw) && $raw !== '') {
            $msg = str_replace($raw, (string) fpmlb_redact_save_path($raw, $h), $msg);
        }
    }
    $msg = (string) preg_replace_callback(
        '/((?:^|[?&\s,(\'"])[A-Za-z_]*(?:auth|user|pass|passwd|password|passphrase|secret|token)'
        . '(?:\[[^\]=&]*\])?=)([^&\s,)\'"]*)/i',
        static fn(array $m): string => str_starts_with($m[2], 'sha256:')
            ? $m[0] : $m[1] . fpmlb_digest(urldecode($m[2])),
        $msg
    );
    return (string) preg_replace_callback(
        '#(://)([^/?@\s]*)@#',
        static fn(array $m): string => str_starts_with($m[2], 'sha256:')
            ? $m[0] : $m[1] . fpmlb_digest($m[2]) . '@',
        $msg
    );
}

function fpmlb_reply(array $data, int $status = 200): never
{
    // Drop anything that might have been printed (nothing should have been).
    while (ob_get_level() > 0) {
        @ob_end_clean();
    }
    if (!headers_sent()) {
        http_response_code($status);
        header('Content-Type: application/json');
        header('Cache-Control: no-store');
        header('X-Fpmlb-Probe: ' . FPMLB_PROBE_VERSION);
    }
    $notices = array_values(array_unique($GLOBALS['fpmlb_notices'] ?? []));
    if ($notices !== [] && !array_key_exists('notices', $data)) {
        $data['notices'] = array_map('fpmlb_redact_message', array_slice($notices, 0, 10));
    }
    $json = json_encode(
        $data,
        JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE | JSON_PARTIAL_OUTPUT_ON_ERROR
    );
    echo ($json === false ? '{"ok":false,"error":"json_encode failed"}' : $json), "\n";
    exit;
}

function fpmlb_node_name(): string
{
    // Process environment only (pool "env[NODE_NAME] = ..."), never a FastCGI param.
    $n = getenv('NODE_NAME', true);
    if (is_string($n) && $n !== '') {
        return $n;
    }
    $n = @gethostname(); // uname(2): works in a chroot without name resolution
    if (is_string($n) && $n !== '') {
        return $n;
    }
    return (string) @php_uname('n');
}

/** Effective (per-pool, per-request) value of one ini setting, null when unset. */
function fpmlb_ini_local(string $ext, string $key): ?string
{
    $all = @ini_get_all($ext, true);
    if (!is_array($all) || !array_key_exists($key, $all)) {
        return null;
    }
    $v = $all[$key]['local_value'] ?? null;
    return $v === null ? null : (string) $v;
}

function fpmlb_save_handler(): ?string
{
    return fpmlb_ini_local('session', 'session.save_handler');
}

// ---------------------------------------------------------------- redaction

function fpmlb_digest(string $secret): string
{
    return 'sha256:' . substr(hash('sha256', $secret), 0, 16);
}

/** True for query parameter names that carry credentials: auth, auth[], auth[user],
 * user, pass, password, stream[passphrase], ... (compared after urldecode). */
function fpmlb_is_credential_key(string $rawKey): bool
{
    $key = strtolower(urldecode($rawKey));
    if (!preg_match_all('/[a-z0-9_]+/', $key, $m)) {
        return false;
    }
    static $secret = ['auth', 'user', 'username', 'pass', 'password', 'passwd',
        'passphrase', 'secret', 'token', 'sasl_username', 'sasl_password'];
    foreach ($m[0] as $word) {
        if (in_array($word, $secret, true)) {
            return true;
        }
    }
    return false;
}

/** Redacts credentials in an "a=1&b=2" string: each credential value becomes the
 * digest of its urldecoded value (what the extension sees). */
function fpmlb_redact_query(string $query): string
{
    $parts = explode('&', $query);
    foreach ($parts as $i => $part) {
        $eq = strpos($part, '=');
        if ($eq === false) {
            continue;
        }
        $k = substr($part, 0, $eq);
        if (fpmlb_is_credential_key($k)) {
            $parts[$i] = $k . '=' . fpmlb_digest(urldecode(substr($part, $eq + 1)));
        }
    }
    return implode('&', $parts);
}

/** Redacts one server entry: URL userinfo ("scheme://user:pass@host", "user:pass@host")
 * becomes one digest of the whole userinfo as written; credential query values are
 * digested too. */
function fpmlb_redact_entry(string $entry): string
{
    if (preg_match('#^([a-zA-Z][a-zA-Z0-9+.-]*://)?([^/?@]*)@(.*)$#s', $entry, $m)) {
        $entry = $m[1] . fpmlb_digest($m[2]) . '@' . $m[3];
    }
    $q = strpos($entry, '?');
    if ($q !== false) {
        $entry = substr($entry, 0, $q + 1) . fpmlb_redact_query(substr($entry, $q + 1));
    }
    return $entry;
}

/** Redacted form of a save path. For rediscluster the whole path is one query
 * string ("seed[]=h:p&auth=..."); otherwise it is a list of server entries separated
 * by commas/whitespace, as memcached, memcache and redis parse it. */
function fpmlb_redact_save_path(?string $path, ?string $handler): ?string
{
    if ($path === null || $path === '') {
        return $path;
    }
    if (strtolower((string) $handler) === 'rediscluster') {
        return fpmlb_redact_query($path);
    }
    $pieces = preg_split('/([\s,]+)/', $path, -1, PREG_SPLIT_DELIM_CAPTURE);
    if ($pieces === false) {
        return fpmlb_digest($path); // cannot tokenise: hide it entirely
    }
    foreach ($pieces as $i => $piece) {
        if ($i % 2 === 0 && $piece !== '') {
            $pieces[$i] = fpmlb_redact_entry($piece);
        }
    }
    return implode('', $pieces);
}

// ---------------------------------------------------------------- config

/** Registered session save handlers. PHP has no function listing them, so the
 * "Registered save handlers" row of phpinfo(INFO_MODULES) is parsed; when phpinfo
 * is disabled, each known module name is tried with session_module_name() (which
 * refuses unknown modules) and the original module is restored. */
function fpmlb_registered_handlers(): array
{
    if (function_exists('phpinfo')) {
        ob_start();
        @phpinfo(INFO_MODULES);
        $html = (string) ob_get_clean();
        $text = strip_tags(str_replace(['</td>', '</th>'], ' => ', $html));
        if (preg_match('/Registered save handlers\s*=>\s*([^\n=]*)/', $text, $m)) {
            $list = preg_split('/\s+/', trim(html_entity_decode($m[1])), -1, PREG_SPLIT_NO_EMPTY);
            return ['source' => 'phpinfo', 'handlers' => $list ?: []];
        }
    }
    $found = [];
    $orig = @session_module_name();
    if (is_string($orig) && session_status() !== PHP_SESSION_ACTIVE) {
        foreach (['files', 'memcached', 'memcache', 'redis', 'rediscluster'] as $name) {
            try {
                if (@session_module_name($name) !== false) {
                    $found[] = $name;
                }
            } catch (Throwable $e) {
                // ValueError and friends: not registered
            }
        }
        try {
            @session_module_name($orig);
        } catch (Throwable $e) {
        }
        fpmlb_take_errors(); // "cannot be found" warnings are the expected answer
        return ['source' => 'session_module_name', 'handlers' => $found];
    }
    return ['source' => 'none', 'handlers' => []];
}

/** Local values of an extension's ini settings, optionally only keys with a prefix. */
function fpmlb_ini_section(string $ext, string $prefix = ''): array
{
    $out = [];
    foreach (fpmlb_ini_entries($ext, $prefix) as $key => $info) {
        $v = $info['local_value'] ?? null;
        $out[$key] = $v === null ? null : (string) $v;
    }
    return $out;
}

/** ini_get_all() details of an extension's settings, optionally only keys with a prefix. */
function fpmlb_ini_entries(string $ext, string $prefix = ''): array
{
    $out = [];
    $all = @ini_get_all($ext, true);
    if (!is_array($all)) {
        return $out;
    }
    foreach ($all as $key => $info) {
        if ($prefix === '' || strncmp($key, $prefix, strlen($prefix)) === 0) {
            $out[$key] = is_array($info) ? $info : [];
        }
    }
    return $out;
}

/** Where a setting's value comes from, as far as PHP tells: "global" is the value every
 * request of the pool starts with (php.ini, then the pool's php_value/php_admin_value,
 * which php-fpm writes over it at worker start), "access" the levels that may still
 * change it (a php_admin_value leaves 4, PHP_INI_SYSTEM), "php_ini" what php.ini and
 * the scanned files say (get_cfg_var(): the pool's lines never reach it). */
function fpmlb_origin(array $info, string $key): array
{
    $cfg = @get_cfg_var($key);
    $global = $info['global_value'] ?? null;
    return [
        'global' => $global === null ? null : (string) $global,
        'access' => (int) ($info['access'] ?? 7),
        'php_ini' => is_string($cfg) ? $cfg : null,
    ];
}

/** Settings a .user.ini may carry that matter to sessions. */
function fpmlb_session_key(string $key): bool
{
    foreach (['session.', 'memcached.sess_', 'memcache.', 'redis.session.'] as $p) {
        if (strncmp($key, $p, strlen($p)) === 0) {
            return true;
        }
    }
    return $key === 'max_execution_time';
}

/** The .user.ini files php-fpm reads for the application's script (FPMLB_APP_SCRIPT,
 * default /index.php, below FPMLB_DOCUMENT_ROOT): one per directory from the document
 * root down to the script's, deeper ones winning, as php_cgi_ini_activate_user_config
 * does. Only session-relevant settings are kept. */
function fpmlb_user_ini_files(): array
{
    $root = $_SERVER['FPMLB_DOCUMENT_ROOT'] ?? '';
    $name = (string) ini_get('user_ini.filename');
    if (!is_string($root) || $root === '' || $root[0] !== '/' || $name === '' || str_contains($name, '/')) {
        return [];
    }
    $script = $_SERVER['FPMLB_APP_SCRIPT'] ?? '/index.php';
    if (!is_string($script) || str_contains($script, '..') || str_contains($script, "\0")) {
        $script = '/index.php';
    }
    $dirs = [rtrim($root, '/')];
    $rel = trim(dirname('/' . ltrim($script, '/')), '/');
    if ($rel !== '' && $rel !== '.') {
        $dir = rtrim($root, '/');
        foreach (explode('/', $rel) as $part) {
            $dir .= '/' . $part;
            $dirs[] = $dir;
        }
    }
    $files = [];
    foreach ($dirs as $dir) {
        $path = ($dir === '' ? '' : $dir) . '/' . $name;
        if (!@is_file($path) || !@is_readable($path)) {
            continue;
        }
        $parsed = @parse_ini_file($path, false, INI_SCANNER_NORMAL);
        $settings = [];
        if (is_array($parsed)) {
            foreach ($parsed as $k => $v) {
                if (is_string($k) && fpmlb_session_key($k) && is_scalar($v)) {
                    $settings[$k] = (string) $v;
                }
            }
        }
        $files[] = ['path' => $path, 'parsed' => is_array($parsed), 'settings' => $settings];
    }
    return $files;
}

/** Applies the application's .user.ini settings to this request, where php-fpm would
 * (the setting's access allows PHP_INI_PERDIR): the session actions then run as the
 * application's scripts do. Returns the keys applied. */
function fpmlb_apply_user_ini(): array
{
    fpmlb_no_active_session(); // session settings cannot change while one is open
    $applied = [];
    $all = null;
    foreach (fpmlb_user_ini_files() as $file) {
        foreach ($file['settings'] as $key => $value) {
            $all ??= @ini_get_all(null, true);
            $access = (int) ($all[$key]['access'] ?? 0);
            if (($access & 2) === 0) {
                continue; // php_admin_value or PHP_INI_SYSTEM: .user.ini cannot change it
            }
            if (@ini_set($key, $value) !== false) {
                $applied[] = $key;
            }
        }
    }
    fpmlb_take_errors();
    return $applied;
}

function fpmlb_action_config(): never
{
    $ext = [
        'memcached' => extension_loaded('memcached'),
        'memcache' => extension_loaded('memcache'),
        'redis' => extension_loaded('redis'),
    ];
    $ini = fpmlb_ini_section('session');
    $ini['max_execution_time'] = (string) ini_get('max_execution_time');
    $handler = $ini['session.save_handler'] ?? null;
    if (array_key_exists('session.save_path', $ini)) {
        $ini['session.save_path'] = fpmlb_redact_save_path($ini['session.save_path'], $handler);
    }
    if ($ext['memcached']) {
        foreach (fpmlb_ini_section('memcached', 'memcached.sess_') as $k => $v) {
            if (($k === 'memcached.sess_sasl_username' || $k === 'memcached.sess_sasl_password')
                && $v !== null && $v !== '') {
                $v = fpmlb_digest($v);
            }
            $ini[$k] = $v;
        }
    }
    if ($ext['memcache']) {
        foreach (fpmlb_ini_section('memcache') as $k => $v) {
            if ($k === 'memcache.session_save_path') {
                $v = fpmlb_redact_save_path($v, 'memcache');
            }
            $ini[$k] = $v;
        }
    }
    if ($ext['redis']) {
        foreach (fpmlb_ini_section('redis', 'redis.session.') as $k => $v) {
            $ini[$k] = $v;
        }
    }
    ksort($ini);
    $origin = [];
    $entries = fpmlb_ini_entries('session') + fpmlb_ini_entries('memcached', 'memcached.sess_')
        + fpmlb_ini_entries('memcache') + fpmlb_ini_entries('redis', 'redis.session.');
    $core = @ini_get_all(null, true);
    if (is_array($core) && isset($core['max_execution_time'])) {
        $entries['max_execution_time'] = $core['max_execution_time'];
    }
    foreach ($entries as $key => $info) {
        if (!array_key_exists($key, $ini)) {
            continue;
        }
        $o = fpmlb_origin($info, $key);
        $secret = in_array($key, ['memcached.sess_sasl_username', 'memcached.sess_sasl_password'], true);
        $paths = ['session.save_path' => $handler, 'memcache.session_save_path' => 'memcache'];
        foreach (['global', 'php_ini'] as $f) {
            if ($o[$f] === null || $o[$f] === '') {
                continue;
            }
            if ($secret) {
                $o[$f] = fpmlb_digest($o[$f]);
            } elseif (array_key_exists($key, $paths)) {
                $o[$f] = fpmlb_redact_save_path($o[$f], $paths[$key]);
            }
        }
        $origin[$key] = $o;
    }
    $userIni = fpmlb_user_ini_files();
    foreach ($userIni as $i => $file) {
        foreach (['session.save_path' => $handler, 'memcache.session_save_path' => 'memcache'] as $k => $h) {
            if (isset($file['settings'][$k])) {
                $userIni[$i]['settings'][$k] = (string) fpmlb_redact_save_path($file['settings'][$k], $h);
            }
        }
        foreach (['memcached.sess_sasl_username', 'memcached.sess_sasl_password'] as $k) {
            if (isset($file['settings'][$k]) && $file['settings'][$k] !== '') {
                $userIni[$i]['settings'][$k] = fpmlb_digest($file['settings'][$k]);
            }
        }
    }
    $scanned = php_ini_scanned_files();
    $registered = fpmlb_registered_handlers();
    fpmlb_reply([
        'probe_version' => FPMLB_PROBE_VERSION,
        'node' => fpmlb_node_name(),
        'php_version' => PHP_VERSION,
        'sapi' => PHP_SAPI,
        'extensions' => $ext,
        'ini' => $ini,
        'save_handler_registered' => $registered['handlers'],
        'save_handler_registered_source' => $registered['source'],
        'origin' => $origin,
        'php_ini_loaded_file' => php_ini_loaded_file() ?: null,
        'php_ini_scanned_files' => is_string($scanned)
            ? array_values(array_filter(array_map('trim', explode(',', $scanned)))) : [],
        'user_ini' => ['filename' => (string) ini_get('user_ini.filename'), 'files' => $userIni],
        'files_dir_listable' => $handler === 'files' ? fpmlb_files_dir_listable() : null,
        'php_fpm' => fpmlb_php_fpm_facts(),
        'error' => fpmlb_error_string(fpmlb_take_errors()),
    ]);
}

// ---------------------------------------------------------------- php-fpm

/** What decides php-fpm's PATH_INFO walk-back on this node (fpmlb's README,
 * "Security"). cgi.fix_pathinfo is an ini setting; security.limit_extensions is
 * a pool setting PHP cannot read, so the probe leaves two small text files
 * named like scripts in the temp dir ("limit_extensions_test": one .phar, one
 * of a made-up extension) and fpmlb asks php-fpm to run each: 403 "Access
 * denied." means the extension is refused. Their content is plain text, never
 * code; a file of that name this process did not create (another user's, or a
 * link) is not reported. */
function fpmlb_php_fpm_facts(): array
{
    $dir = rtrim(sys_get_temp_dir(), '/');
    $euid = function_exists('posix_geteuid') ? posix_geteuid() : null;
    $tests = [];
    foreach (['phar' => 'phar', 'other' => 'fpmlbtest'] as $key => $ext) {
        $path = $dir . '/fpmlb-limit-extensions.' . $ext;
        $f = @fopen($path, 'x'); // never through an existing file or link
        if ($f !== false) {
            @fwrite($f, "fpmlb limit_extensions test\n");
            @fclose($f);
        }
        clearstatcache(true, $path);
        $ours = $euid !== null && !is_link($path) && is_file($path)
            && @fileowner($path) === $euid;
        $tests[$key] = $ours ? $path : null;
    }
    $fix = ini_get('cgi.fix_pathinfo');
    return [
        'cgi.fix_pathinfo' => $fix === false ? null : $fix,
        'limit_extensions_test' => $tests,
    ];
}

// ---------------------------------------------------------------- sessions

/** The session id sent by fpmlb in HTTP_COOKIE ("<session.name>=<id>"), read from the
 * raw header so that session.use_cookies / name mangling in $_COOKIE do not matter. */
function fpmlb_cookie_id(string $name): ?string
{
    $raw = $_SERVER['HTTP_COOKIE'] ?? '';
    if (is_string($raw) && $raw !== '') {
        foreach (explode(';', $raw) as $pair) {
            $eq = strpos($pair, '=');
            if ($eq !== false && trim(substr($pair, 0, $eq)) === $name) {
                return urldecode(trim(substr($pair, $eq + 1)));
            }
        }
    }
    $c = $_COOKIE[$name] ?? null;
    return is_string($c) ? $c : null;
}

/** Closes a session that session.auto_start may have opened, without writing it. */
function fpmlb_no_active_session(): void
{
    if (session_status() === PHP_SESSION_ACTIVE) {
        @session_abort();
    }
}

/** Turns off session.use_strict_mode for this request so that an unknown id is read as
 * empty instead of being replaced by a freshly created session. Reading an id that
 * exists is identical in both modes. Returns whether it could be turned off. */
function fpmlb_relax_strict_mode(): bool
{
    if (fpmlb_ini_local('session', 'session.use_strict_mode') !== '1') {
        return true;
    }
    return @ini_set('session.use_strict_mode', '0') !== false
        && fpmlb_ini_local('session', 'session.use_strict_mode') === '0';
}

/** For the files handler: the directory of session.save_path ("[N;[MODE;]]/path"). */
function fpmlb_files_dir(): string
{
    $parts = explode(';', (string) fpmlb_ini_local('session', 'session.save_path'));
    $dir = (string) end($parts);
    return $dir === '' ? sys_get_temp_dir() : $dir;
}

/** Whether PHP can list the files handler's directory: its garbage collection
 * (mod_files.c ps_files_cleanup_dir) opendir()s it, and Debian's mode 1733 does not let
 * it, leaving the cleaning to a cron job. */
function fpmlb_files_dir_listable(): bool
{
    $d = @opendir(fpmlb_files_dir());
    if ($d === false) {
        fpmlb_take_errors();
        return false;
    }
    closedir($d);
    return true;
}

/** For the files handler: the file that would hold session $id, per session.save_path
 * ("[N;[MODE;]]/path", N = directory levels named after the id's first characters). */
function fpmlb_files_session_path(string $id): ?string
{
    $path = (string) fpmlb_ini_local('session', 'session.save_path');
    $parts = explode(';', $path);
    $dir = (string) end($parts);
    $depth = count($parts) > 1 ? (int) $parts[0] : 0;
    if ($dir === '') {
        $dir = sys_get_temp_dir();
    }
    if ($depth < 0 || strlen($id) < $depth || !preg_match('/^[a-zA-Z0-9,-]+$/', $id)) {
        return null;
    }
    for ($i = 0; $i < $depth; $i++) {
        $dir .= '/' . $id[$i];
    }
    return rtrim($dir, '/') . '/sess_' . $id;
}

function fpmlb_action_write(): never
{
    $node = fpmlb_node_name();
    fpmlb_apply_user_ini();
    $token = $_SERVER['FPMLB_PROBE_TOKEN'] ?? null;
    if (!is_string($token) || $token === '') {
        fpmlb_reply(['node' => $node, 'ok' => false, 'error' => 'FPMLB_PROBE_TOKEN missing'], 400);
    }
    fpmlb_no_active_session();
    fpmlb_take_errors();
    $started = false;
    try {
        $started = @session_start();
    } catch (Throwable $e) {
        $GLOBALS['fpmlb_errors'][] = $e->getMessage();
    }
    $startErrors = fpmlb_take_errors();
    $id = (string) session_id();
    $closed = false;
    $readback = null;
    if ($started) {
        $_SESSION[FPMLB_PROBE_KEY] = $token;
        try {
            $closed = @session_write_close();
        } catch (Throwable $e) {
            $GLOBALS['fpmlb_errors'][] = $e->getMessage();
        }
        $writeErrors = fpmlb_take_errors();
        $startErrors = array_merge($startErrors, $writeErrors);
        // Read our own write back: proves this node reaches its store at all.
        if ($closed && $writeErrors === []) {
            try {
                @session_id($id);
                // Not read_and_close: pecl-memcache then keeps its lock key
                // and the next session_start() of this id waits for
                // memcache.lock_timeout (15 s); only a write releases it.
                if (@session_start()) {
                    $readback = ($_SESSION[FPMLB_PROBE_KEY] ?? null) === $token;
                    @session_write_close();
                } else {
                    $readback = false;
                }
            } catch (Throwable $e) {
                $GLOBALS['fpmlb_errors'][] = $e->getMessage();
                $readback = false;
            }
            $startErrors = array_merge($startErrors, fpmlb_take_errors());
        }
    }
    $ok = $started && $closed && $readback === true && $startErrors === [];
    fpmlb_reply([
        'node' => $node,
        'ok' => $ok,
        'session_id' => $id,
        'session_name' => session_name(),
        'save_handler' => fpmlb_save_handler(),
        'readback' => $readback,
        'error' => fpmlb_error_string($startErrors) ?? ($ok ? null : 'session could not be written'),
    ]);
}

function fpmlb_action_read(): never
{
    $node = fpmlb_node_name();
    fpmlb_apply_user_ini();
    $handler = fpmlb_save_handler();
    fpmlb_no_active_session();
    $name = session_name();
    $want = fpmlb_cookie_id((string) $name);
    $base = ['node' => $node, 'save_handler' => $handler, 'requested_id' => $want];
    if ($want === null || $want === '') {
        fpmlb_reply($base + ['ok' => false, 'session_id' => null, 'found' => false,
            'value' => null, 'error' => "no $name cookie in HTTP_COOKIE"], 400);
    }
    // files: an unknown id would leave an empty session file behind; look first.
    if ($handler === 'files') {
        $file = fpmlb_files_session_path($want);
        if ($file !== null && !@is_file($file)) {
            fpmlb_take_errors();
            fpmlb_reply($base + ['ok' => true, 'session_id' => $want, 'found' => false,
                'value' => null, 'method' => 'file_check', 'error' => null]);
        }
    }
    $relaxed = fpmlb_relax_strict_mode();
    fpmlb_take_errors();
    $started = false;
    try {
        @session_id($want);
        // Not read_and_close (see the write action): pecl-memcache would keep
        // its lock. The data is written back unchanged, or, when the id was
        // unknown, the empty session PHP started is destroyed again.
        $started = @session_start();
    } catch (Throwable $e) {
        $GLOBALS['fpmlb_errors'][] = $e->getMessage();
    }
    $errors = fpmlb_take_errors();
    $got = (string) session_id();
    $found = $started && is_array($_SESSION ?? null) && array_key_exists(FPMLB_PROBE_KEY, $_SESSION);
    $value = $found ? $_SESSION[FPMLB_PROBE_KEY] : null;
    if ($started && $got === $want) {
        try {
            if (($_SESSION ?? []) === []) {
                @session_destroy();
            } else {
                @session_write_close();
            }
        } catch (Throwable $e) {
        }
        fpmlb_take_errors();
    }
    $cleaned = false;
    if ($started && $got !== '' && $got !== $want) {
        // Strict mode could not be turned off and PHP replaced the unknown id with a
        // new session: remove that one again.
        try {
            @session_id($got);
            if (@session_start()) {
                $cleaned = @session_destroy();
            }
        } catch (Throwable $e) {
        }
        fpmlb_take_errors();
    }
    fpmlb_reply($base + [
        'ok' => $started,
        'session_id' => $got,
        'found' => $found,
        'value' => is_scalar($value) ? (string) $value : null,
        'method' => 'session_start',
        'strict_mode_relaxed' => $relaxed,
        'new_session_removed' => $cleaned,
        'error' => fpmlb_error_string($errors),
    ]);
}

/** The session id of the cookie fpmlb sent, with this node's .user.ini applied and no
 * session open; replies 400 when there is no such cookie. Returns [node, id]. */
function fpmlb_cookie_session(): array
{
    $node = fpmlb_node_name();
    fpmlb_apply_user_ini();
    $name = session_name();
    $want = fpmlb_cookie_id((string) $name);
    if ($want === null || $want === '') {
        fpmlb_reply(['node' => $node, 'ok' => false, 'error' => "no $name cookie in HTTP_COOKIE"], 400);
    }
    fpmlb_relax_strict_mode();
    fpmlb_take_errors();
    return [$node, $want];
}

function fpmlb_action_lock(): never
{
    [$node, $want] = fpmlb_cookie_session();
    $started = false;
    try {
        @session_id($want);
        // What applications do to read a session without holding its lock; pecl-memcache
        // keeps its lock key anyway (only a write releases it): fpmlb measures that.
        $started = @session_start(['read_and_close' => true]);
    } catch (Throwable $e) {
        $GLOBALS['fpmlb_errors'][] = $e->getMessage();
    }
    $errors = fpmlb_take_errors();
    fpmlb_reply(['node' => $node, 'ok' => $started, 'session_id' => $want,
        'found' => $started && array_key_exists(FPMLB_PROBE_KEY, $_SESSION ?? []),
        'save_handler' => fpmlb_save_handler(),
        'error' => fpmlb_error_string($errors)]);
}

function fpmlb_action_destroy(): never
{
    [$node, $want] = fpmlb_cookie_session();
    $ok = false;
    try {
        @session_id($want);
        if (@session_start()) {
            $ok = @session_destroy();
        }
    } catch (Throwable $e) {
        $GLOBALS['fpmlb_errors'][] = $e->getMessage();
    }
    $errors = fpmlb_take_errors();
    fpmlb_reply(['node' => $node, 'ok' => $ok && $errors === [], 'session_id' => $want,
        'error' => fpmlb_error_string($errors)]);
}

// ---------------------------------------------------------------- dispatch

try {
    $action = $_SERVER['FPMLB_PROBE_ACTION'] ?? '';
    $action = is_string($action) && $action !== '' ? $action : 'config';
    switch ($action) {
        case 'config':
            fpmlb_action_config();
        case 'write':
            fpmlb_action_write();
        case 'read':
            fpmlb_action_read();
        case 'lock':
            fpmlb_action_lock();
        case 'destroy':
            fpmlb_action_destroy();
        default:
            fpmlb_reply(['node' => fpmlb_node_name(), 'ok' => false,
                'error' => 'unknown FPMLB_PROBE_ACTION (config, write, read, lock, destroy)'], 400);
    }
} catch (Throwable $e) {
    fpmlb_reply(['node' => fpmlb_node_name(), 'ok' => false,
        'error' => get_class($e) . ': ' . $e->getMessage()], 500);
}
