//! The `bingfa` binary: parse the command line, bind, serve until SIGINT or SIGTERM.

use bingfa::cli::{self, Args};
use bingfa::{Error, Server, Shutdown};
use clap::Parser;
use std::process::ExitCode;

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
    // Before any thread starts, so that every thread and process inherits the blocked signals.
    let shutdown = Shutdown::on_signals().map_err(Error::io("watching SIGINT and SIGTERM"))?;
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
