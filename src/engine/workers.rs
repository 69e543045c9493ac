//! Running a model's workers, one thread each.

use crate::error::Error;
use std::thread;

/// Runs each worker on its own thread, named `bingfa-worker-N` (as `top -H` and
/// `--trace-model` show it), until all return (they do when shutdown is triggered); reports
/// the first failure. A worker's panic is not a connection's (those are caught inside): it is
/// passed on.
pub(crate) fn run_workers<W: Send>(
    workers: Vec<W>,
    run: impl Fn(W) -> Result<(), Error> + Sync,
) -> Result<(), Error> {
    thread::scope(|scope| {
        let run = &run;
        let mut running = Vec::with_capacity(workers.len());
        for (index, worker) in workers.into_iter().enumerate() {
            let started = thread::Builder::new()
                .name(format!("bingfa-worker-{index}"))
                .spawn_scoped(scope, move || run(worker));
            match started {
                Ok(handle) => running.push(handle),
                // Out of threads: those started serve on, and the error is reported when
                // they stop with the server (as the scope must wait for them).
                Err(e) => return Err(Error::io("starting the worker threads")(e)),
            }
        }
        running
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .fold(Ok(()), Result::and)
    })
}
