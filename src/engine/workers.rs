//! Running a model's workers, one thread each.

use crate::error::Error;

/// Runs each worker on its own thread until all return (they do when shutdown is
/// triggered); reports the first failure. A worker's panic is not a connection's (those are
/// caught inside): it is passed on.
pub(crate) fn run_workers<W: Send>(
    workers: Vec<W>,
    run: impl Fn(W) -> Result<(), Error> + Sync,
) -> Result<(), Error> {
    std::thread::scope(|scope| {
        let running: Vec<_> = workers
            .into_iter()
            .map(|worker| scope.spawn(|| run(worker)))
            .collect();
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
