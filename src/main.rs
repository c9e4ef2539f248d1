//! The command line: parse arguments, load the config, run. No logic here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ringway::config::Config;

/// An HTTP reverse proxy on a thread-per-core io_uring engine.
#[derive(Parser, Debug)]
#[command(name = "ringway", version)]
struct Args {
    /// The config file.
    #[arg(short, long, default_value = "config/ringway.toml")]
    config: PathBuf,
    /// Check the config and exit (0 when valid), like `nginx -t`.
    #[arg(short = 't', long)]
    check: bool,
    /// Ask the running process (found through `global.pid_file`) to reload
    /// its config, as SIGHUP does; the config is checked here first.
    #[arg(short = 's', long)]
    reload: bool,
    /// Ask the running process (found through `global.pid_file`) to start
    /// the binary again and hand it its sockets, as SIGUSR2 does; the
    /// config is checked here first.
    #[arg(long, conflicts_with = "reload")]
    upgrade: bool,
    /// Worker threads, overriding `global.workers`.
    #[arg(short, long)]
    workers: Option<usize>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read an nginx config (includes followed) and write the equivalent
    /// ringway TOML on stdout; what cannot be translated faithfully is a
    /// warning on stderr with its file:line.
    ImportNginx {
        /// The main nginx config file (nginx.conf).
        file: PathBuf,
        /// nginx's prefix (`nginx -p`): the base of relative `root`,
        /// `alias` and log paths.
        #[arg(long)]
        prefix: Option<PathBuf>,
        /// Any warning is an error: nothing is written and the exit status is 1.
        #[arg(long)]
        strict: bool,
        /// Turn off what ringway adds that nginx does not send, where ringway
        /// has a key for it (forwarding fields, X-Request-ID).
        #[arg(long)]
        strict_nginx: bool,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::ImportNginx {
        file,
        prefix,
        strict,
        strict_nginx,
    }) = args.command
    {
        return ringway::import::run(&file, prefix, strict, strict_nginx);
    }
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "ringway: configuration file {} test failed ({} error{})",
                args.config.display(),
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" }
            );
            return ExitCode::FAILURE;
        }
    };
    if args.reload {
        return match ringway::server::reload::signal_reload(&config) {
            Ok(pid) => {
                println!("ringway: reload signalled to process {pid}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ringway: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.upgrade {
        return match ringway::server::reload::signal_upgrade(&config) {
            Ok(pid) => {
                println!("ringway: upgrade signalled to process {pid}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ringway: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.check {
        println!(
            "ringway: configuration file {} test is successful",
            args.config.display()
        );
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.global.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let workers = match args.workers {
        Some(0) => {
            eprintln!("ringway: --workers must be at least 1");
            return ExitCode::FAILURE;
        }
        Some(n) => n,
        None => config.worker_count(),
    };
    match ringway::server::run(Arc::new(config), workers, args.config.clone()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringway: {e}");
            ExitCode::FAILURE
        }
    }
}
