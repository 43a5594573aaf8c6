//! Connection tasks a server can stop and wait for at shutdown.

use std::future::Future;
use std::time::Duration;

use tarn::channel::oneshot;
use tarn::JoinHandle;

/// Completes when the server asks its connections to stop.
pub type Stop = oneshot::Receiver<()>;

/// The tasks of open connections, each with the sender whose drop asks it
/// to stop.
#[derive(Default)]
pub struct Tracked(Vec<(oneshot::Sender<()>, JoinHandle<()>)>);

impl Tracked {
    /// Spawns `connection(stop)` and keeps its handle (forgetting finished
    /// ones).
    pub fn spawn<F: Future<Output = ()> + 'static>(&mut self, connection: impl FnOnce(Stop) -> F) {
        self.0.retain(|(_, task)| !task.is_finished());
        let (stop, stopped) = oneshot::channel();
        self.0.push((stop, tarn::spawn(connection(stopped))));
    }

    /// Asks every connection to stop, waits up to `grace` for them to end,
    /// then drops the rest; returns how many were dropped.
    pub async fn finish(self, grace: Duration) -> usize {
        let tasks: Vec<JoinHandle<()>> = self.0.into_iter().map(|(_stop, task)| task).collect();
        let mut deadline = tarn::Timer::after(grace);
        let mut dropped = 0;
        for task in tasks {
            if dropped == 0 {
                let ended = tarn::future::select(task, &mut deadline).await;
                if let tarn::future::Either::Right((_, task)) = ended {
                    task.abort();
                    dropped += 1;
                }
            } else if !task.is_finished() {
                task.abort();
                dropped += 1;
            }
        }
        dropped
    }
}
