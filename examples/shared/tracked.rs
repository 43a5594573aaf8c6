//! Connection tasks a server can wait for at shutdown.

use std::time::Duration;

use tarn::JoinHandle;

/// The tasks of open connections.
#[derive(Default)]
pub struct Tracked(Vec<JoinHandle<()>>);

impl Tracked {
    /// Spawns `connection` and keeps its handle (forgetting finished ones).
    pub fn spawn(&mut self, connection: impl std::future::Future<Output = ()> + 'static) {
        self.0.retain(|task| !task.is_finished());
        self.0.push(tarn::spawn(connection));
    }

    /// Waits up to `grace` for every connection to end, then drops the
    /// rest; returns how many were dropped.
    pub async fn finish(self, grace: Duration) -> usize {
        let mut deadline = tarn::Timer::after(grace);
        let mut dropped = 0;
        for task in self.0 {
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
