//! The command line: `serve`, `check`, `config test`, `config print-default`,
//! `import-nginx`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Where the config is when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/fpmlb/fpmlb.yaml";

/// A FastCGI load balancer for php-fpm pools that checks they share PHP sessions.
#[derive(Debug, Parser)]
#[command(name = "fpmlb", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP and balance PHP requests over the backends.
    Serve {
        #[arg(short, long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Check every backend once (liveness, session config, store, round trip)
    /// and exit: 0 consistent, 1 a problem found, 2 could not check.
    Check {
        #[arg(short, long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also show, per node, every session setting, where its value came from
        /// (php.ini, the pool's php_value/php_admin_value, .user.ini, default) and
        /// what a difference does.
        #[arg(long)]
        explain: bool,
    },
    /// Translate an nginx config (nginx.conf or a site file, with its
    /// includes) into an fpmlb config; every directive not translated is
    /// listed with its file and line. Exit 0: written and valid; 2: written,
    /// but this fpmlb refuses it (try --compat); 1: nothing written.
    ImportNginx {
        /// The nginx config to read.
        file: PathBuf,
        /// Write the fpmlb config here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Write only keys this fpmlb knows; TLS, static files, locations and
        /// the like commented out.
        #[arg(long)]
        compat: bool,
        /// nginx's configuration prefix, where relative includes are found
        /// (nginx -p); default: FILE's directory, or its parent when that is
        /// sites-available, sites-enabled or conf.d.
        #[arg(long)]
        prefix: Option<PathBuf>,
        /// The PHP server to import, by a server_name or its number among the
        /// PHP servers; default: the first.
        #[arg(long)]
        server: Option<String>,
    },
    /// Work with the config file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate the config; print every error with key and line.
    Test {
        #[arg(short, long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Print the documented default config.
    PrintDefault,
}

/// Output format of `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}
