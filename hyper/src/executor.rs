//! [`TarnExecutor`]: hyper's executor on tarn's.

use std::future::Future;

/// hyper's [`rt::Executor`](hyper::rt::Executor) on tarn: each future
/// hyper hands it (an HTTP/2 stream, a client connection's background
/// work) becomes a task on the calling thread's tarn executor.
///
/// The futures need not be `Send`: tarn's executor is one per thread, so
/// HTTP/2 services may hold `Rc`s. The executor itself is `Send + Sync`
/// (it holds nothing), so it also fits where a library asks for a `Send`
/// executor; it still spawns onto the thread that calls it, which must be
/// running a tarn executor ([`tarn::block_on`]): elsewhere the spawn
/// panics, saying so.
#[derive(Clone, Copy, Debug, Default)]
pub struct TarnExecutor;

impl<F: Future + 'static> hyper::rt::Executor<F> for TarnExecutor {
    fn execute(&self, future: F) {
        // The handle is dropped: the task runs detached, as hyper expects.
        drop(tarn::spawn(future));
    }
}
