//! Live progress on stderr: a one-line display redrawn about four times a second on
//! a terminal, or a plain line every few seconds when stderr is a file or a pipe
//! (CI logs should not fill with carriage returns).

use crate::tally::{Snapshot, Tally};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Redraw interval on a terminal, in milliseconds.
const TTY_REFRESH_MS: u64 = 250;
/// Line interval when stderr is not a terminal, in seconds.
const LOG_INTERVAL_S: u64 = 5;

/// A running display; [`Progress::finish`] prints the final line and stops it.
#[derive(Debug)]
pub struct Progress {
    /// Tells the display task to stop.
    stop: watch::Sender<bool>,
    /// The display task.
    task: JoinHandle<()>,
}

fn line(phase: &str, s: Snapshot, rate: f64, elapsed: Duration) -> String {
    format!(
        "{phase:<18} sent {:>9}  ok {:>9}  refused {:>9}  errors {:>7}  rate {:>8.0}/s  {:>6.1}s",
        s.sent,
        s.ok,
        s.refused,
        s.errors,
        rate,
        elapsed.as_secs_f64()
    )
}

impl Progress {
    /// Starts showing `tally` under the name `phase`.
    pub fn start(phase: &str, tally: Arc<Tally>) -> Progress {
        let (stop, mut stopped) = watch::channel(false);
        let phase = phase.to_owned();
        let tty = std::io::stderr().is_terminal();
        let every = if tty {
            Duration::from_millis(TTY_REFRESH_MS)
        } else {
            Duration::from_secs(LOG_INTERVAL_S)
        };
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut last = (started, 0u64);
            loop {
                let done = tokio::select! {
                    _ = tokio::time::sleep(every) => false,
                    _ = stopped.changed() => true,
                };
                let now = Instant::now();
                let s = tally.snapshot();
                let dt = now.duration_since(last.0).as_secs_f64();
                let rate = if done {
                    s.sent as f64 / now.duration_since(started).as_secs_f64().max(1e-9)
                } else if dt > 0.0 {
                    s.sent.saturating_sub(last.1) as f64 / dt
                } else {
                    0.0
                };
                last = (now, s.sent);
                let text = line(&phase, s, rate, now.duration_since(started));
                let mut err = std::io::stderr().lock();
                // Progress output is best effort: a closed stderr must not stop the run.
                let _ = if tty {
                    write!(err, "\r\x1b[2K{text}{}", if done { "\n" } else { "" })
                } else {
                    writeln!(err, "{text}")
                };
                let _ = err.flush();
                if done {
                    break;
                }
            }
        });
        Progress { stop, task }
    }

    /// Prints the final figures (average rate over the phase) and stops.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
