//! The fpmlb binary: parse the command line, set up logging, run.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use fpmlb::cli::{Cli, Command, ConfigCommand, Format};

/// jemalloc, built with a background thread that gives unused pages back to
/// the kernel after 1 s (`.cargo/config.toml`). With glibc's malloc, the
/// buffers a burst of requests freed stayed resident between the small
/// allocations of the connections left open: 10,000 idle clients cost
/// 3.0-4.2 KiB each, 1.6 KiB with jemalloc (README, Performance).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use fpmlb::config::{Config, DEFAULT_CONFIG, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            command: ConfigCommand::PrintDefault,
        } => {
            print!("{DEFAULT_CONFIG}");
            ExitCode::SUCCESS
        }
        Command::Config {
            command: ConfigCommand::Test { config },
        } => match Config::load(&config) {
            Ok(loaded) => {
                // The files the config names: certificates parse, keys match.
                let problems = loaded
                    .tls
                    .as_ref()
                    .map(fpmlb::tls::check_files)
                    .unwrap_or_default();
                if !problems.is_empty() {
                    eprintln!(
                        "fpmlb: configuration file {} test failed:",
                        config.display()
                    );
                    for p in problems {
                        eprintln!("{p}");
                    }
                    return ExitCode::from(1);
                }
                for warning in &loaded.warnings {
                    eprintln!("fpmlb: warning: {warning}");
                }
                println!(
                    "fpmlb: the configuration file {} syntax is ok",
                    config.display()
                );
                println!(
                    "fpmlb: configuration file {} test is successful",
                    config.display()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!(
                    "fpmlb: configuration file {} test failed:",
                    config.display()
                );
                eprintln!("{errors}");
                ExitCode::from(1)
            }
        },
        Command::ImportNginx {
            file,
            output,
            compat,
            prefix,
            server,
        } => import_nginx(
            &file,
            output.as_deref(),
            prefix.as_deref(),
            fpmlb::nginx::Options { compat, server },
        ),
        Command::Serve { config } => {
            let config_path = config;
            let config = match Config::load(&config_path) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!(
                        "fpmlb: configuration file {} has errors:\n{errors}",
                        config_path.display()
                    );
                    return ExitCode::from(1);
                }
            };
            init_logging(&config);
            for warning in &config.warnings {
                tracing::warn!("{}: {warning}", config_path.display());
            }
            match serve(config, config_path) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("fpmlb: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Check {
            config,
            format,
            explain,
        } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!(
                        "fpmlb: configuration file {} has errors:\n{errors}",
                        config.display()
                    );
                    return ExitCode::from(2);
                }
            };
            init_logging_quiet();
            let report = match runtime().and_then(|rt| {
                rt.block_on(fpmlb::check::run(&config, explain))
                    .context("check")
            }) {
                Ok(report) => report,
                Err(e) => {
                    eprintln!("fpmlb check: could not check: {e:#}");
                    return ExitCode::from(2);
                }
            };
            match format {
                Format::Text => print!("{}", fpmlb::session::render::text(&report)),
                Format::Json => match serde_json::to_string_pretty(&report) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("fpmlb check: {e}");
                        return ExitCode::from(2);
                    }
                },
            }
            if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// `fpmlb import-nginx`: read, translate, list the notes on stderr, check the
/// result with this fpmlb's own loader, write it.
fn import_nginx(
    file: &std::path::Path,
    output: Option<&std::path::Path>,
    prefix: Option<&std::path::Path>,
    options: fpmlb::nginx::Options,
) -> ExitCode {
    use fpmlb::nginx::{Limits, NoteKind, import, load};
    let loaded = match load(file, prefix, Limits::default()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fpmlb import-nginx: {e}");
            return ExitCode::from(1);
        }
    };
    let imported = match import(&loaded, &options) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("fpmlb import-nginx: {}: {e}", file.display());
            return ExitCode::from(1);
        }
    };
    for note in &imported.notes {
        eprintln!("{note}");
    }
    eprintln!(
        "fpmlb import-nginx: {} directives translated, {} not translated, {} translated with a \
         difference, {} left out by --compat",
        imported.translated,
        imported.count(NoteKind::Untranslated),
        imported.count(NoteKind::Differs),
        imported.count(NoteKind::Compat),
    );
    let valid = match Config::from_yaml(&imported.yaml) {
        Ok(_) => {
            eprintln!("fpmlb import-nginx: the result passes `fpmlb config test`");
            true
        }
        Err(errors) => {
            eprintln!(
                "fpmlb import-nginx: this fpmlb refuses the result{}:\n{errors}",
                if options.compat {
                    ""
                } else {
                    " (keys it does not know yet? try --compat)"
                }
            );
            false
        }
    };
    let written = match output {
        Some(path) => std::fs::write(path, &imported.yaml)
            .map_err(|e| format!("writing {}: {e}", path.display())),
        None => {
            use std::io::Write as _;
            std::io::stdout()
                .write_all(imported.yaml.as_bytes())
                .map_err(|e| format!("writing to standard output: {e}"))
        }
    };
    match written {
        Err(e) => {
            eprintln!("fpmlb import-nginx: {e}");
            ExitCode::from(1)
        }
        Ok(()) if valid => ExitCode::SUCCESS,
        Ok(()) => ExitCode::from(2),
    }
}

/// The multi-thread runtime of the one-shot commands.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The daemon's own runtime, on the main thread: accept loops, checks, the
/// admin API. Connections are served on `workers` threads of their own
/// (`fpmlb::runtime`).
fn serve(config: Config, path: std::path::PathBuf) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(fpmlb::daemon::run(config, path))
        .context("serve")
}

/// Logging for `serve`: RUST_LOG wins over the config's level.
fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Logging for one-shot commands: warnings and errors only, unless RUST_LOG says more.
fn init_logging_quiet() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
