//! The `bingfa` binary: parse the command line, bind, serve until SIGINT or SIGTERM.

use bingfa::cli::{self, Args};
use bingfa::{Error, Server, Shutdown};
use clap::Parser;
use nix::sys::signal::{SigSet, Signal};
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        // --help and --version are "errors" that print to stdout and succeed.
        Err(error) if !error.use_stderr() => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => return fail(&cli::one_line(&error)),
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("bingfa: {message}");
    ExitCode::FAILURE
}

fn run(args: &Args) -> Result<(), Error> {
    // Before the config, whose default connection limit follows the descriptor limit.
    bingfa::server::raise_open_file_limit();
    let config = args.config();
    let listener = bingfa::bind(args.bind)?;
    let server = Server::new(listener, &config)?;
    let shutdown = Shutdown::new().map_err(Error::io("creating the shutdown signal"))?;
    stop_on_signals(Arc::clone(&shutdown)).map_err(Error::io("installing signal handling"))?;
    println!(
        "bingfa {} serving {} at http://{}/ (model {}, {} workers)",
        env!("CARGO_PKG_VERSION"),
        server.root().display(),
        server.local_addr()?,
        config.model,
        config.workers,
    );
    server.run(shutdown)
}

/// SIGINT and SIGTERM are blocked in every thread and taken synchronously by one thread,
/// which triggers the shutdown: no code runs in a signal handler.
fn stop_on_signals(shutdown: Arc<Shutdown>) -> std::io::Result<()> {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    // Threads started later inherit this mask; the workers have not been started yet.
    signals.thread_block()?;
    std::thread::Builder::new()
        .name("bingfa-signals".into())
        .spawn(move || {
            if signals.wait().is_ok() {
                shutdown.trigger();
            }
        })?;
    Ok(())
}
