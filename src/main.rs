//! The `bingfa` binary: parse the command line (with the environment and a config file
//! beneath it), bind (or take the sockets over from the server it upgrades, or from systemd),
//! serve until SIGINT or SIGTERM, or until SIGUSR2 has started a new copy that serves. Or
//! print the configuration, a completion script or the man page, print a password's hash, or
//! check a server's health, and exit.

use bingfa::cli::config::{self, Resolved};
use bingfa::cli::{self, Args};
use bingfa::server::Relaunch;
use bingfa::{Error, Listener, Server, Shutdown};
use std::process::ExitCode;

fn main() -> ExitCode {
    let env = |name: &str| std::env::var_os(name);
    let resolved = match config::resolve(std::env::args_os().collect(), &env) {
        Ok(resolved) => resolved,
        // --help and --version are "errors" that print to stdout and succeed.
        Err(config::Error::Clap(error)) if !error.use_stderr() => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(config::Error::Clap(error)) => return fail(&cli::one_line(&error)),
        Err(config::Error::Message(message)) => return fail(&message),
    };
    let args = &resolved.args;
    let done = if let Some(shell) = args.completions {
        cli::print(&cli::completions(shell)).map_err(|e| format!("writing completions: {e}"))
    } else if args.man {
        cli::man_page()
            .and_then(|page| cli::print(&page))
            .map_err(|e| format!("writing the man page: {e}"))
    } else if args.hash_password {
        cli::hash_password_from(std::io::stdin().lock())
            .and_then(|line| cli::print(line.as_bytes()).map_err(|e| format!("writing the hash: {e}")))
    } else if let Some(url) = &args.health_check {
        cli::health::check(url).map_err(|unhealthy| unhealthy.to_string())
    } else if args.print_config {
        print_config(&resolved)
    } else {
        run(&resolved).map_err(|error| error.to_string())
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("bingfa: {message}");
    ExitCode::FAILURE
}

/// `--print-config`: what `run` would serve with, without binding.
fn print_config(resolved: &Resolved) -> Result<(), String> {
    // As in `run`: the default connection limit follows the raised descriptor limit.
    bingfa::server::raise_open_file_limit();
    let config = resolved.config();
    let text = config::render(resolved, &config)?;
    cli::print(text.as_bytes()).map_err(|e| format!("writing the configuration: {e}"))
}

fn run(resolved: &Resolved) -> Result<(), Error> {
    let args = &resolved.args;
    bingfa::observe::log_to_stderr(args.log_level);
    // Before the config, whose default connection limit follows the descriptor limit.
    bingfa::server::raise_open_file_limit();
    let config = resolved.config();
    // Now, before anything can replace the binary on disk: what SIGUSR2 starts.
    let relaunch = Relaunch::of_this_process().map_err(Error::io("finding the program's path"))?;
    let (server, origin) = match bingfa::net::taken_over().map_err(Error::Handover)? {
        Some(taken) => (
            Server::taking_over(taken, &config)?,
            "sockets from the upgraded server, ",
        ),
        None => {
            let (listener, origin) = listen(args)?;
            (Server::new(listener, &config)?, origin)
        }
    };
    let server = server.upgrading_with(relaunch);
    // Before any thread starts, so that every thread and process inherits the blocked signals.
    let shutdown = Shutdown::on_signals().map_err(Error::io("watching SIGINT and SIGTERM"))?;
    println!(
        "bingfa {} serving {} at {} ({origin}model {}, {} workers)",
        env!("CARGO_PKG_VERSION"),
        server.root().display(),
        server.urls()?.join(", "),
        config.model,
        config.workers,
    );
    server.run(shutdown)
}

/// The socket systemd passed (socket activation), else `--bind`; and for the start line,
/// where the socket came from when it was not `--bind`.
fn listen(args: &Args) -> Result<(Listener, &'static str), Error> {
    let Some(inherited) = bingfa::net::inherited()? else {
        return Ok((bingfa::bind(args.bind.clone())?, ""));
    };
    if inherited.sockets > 1 {
        eprintln!(
            "bingfa: systemd passed {} sockets; serving only the first",
            inherited.sockets
        );
    }
    Ok((inherited.listener, "socket from systemd, "))
}
