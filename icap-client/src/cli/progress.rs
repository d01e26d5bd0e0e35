//! The live line of `scan` on a terminal: elapsed time that ticks, files done, bytes sent
//! and their rate, and the files in flight. Hidden when stderr is not a terminal.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use icap_client::Progress;
use indicatif::{ProgressBar, ProgressStyle};

use super::output::shown;

/// How often the line is redrawn, whether or not a file finished.
const TICK: Duration = Duration::from_millis(100);

/// In-flight names shown at most; the rest as `+N more`.
const SHOWN_IN_FLIGHT: usize = 3;

#[derive(Default)]
struct State {
    done_files: u64,
    /// Bytes sent by the files that finished.
    done_bytes: u64,
    /// Per file index: its name and its live counter.
    in_flight: BTreeMap<usize, (String, Progress)>,
}

/// The progress line (a no-op when hidden).
pub(crate) struct Live {
    bar: ProgressBar,
    total_files: u64,
    state: Arc<Mutex<State>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Live {
    /// A line for `total_files` files, drawn only if `show`.
    pub(crate) fn new(show: bool, total_files: u64) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        if !show {
            return Live {
                bar: ProgressBar::hidden(),
                total_files,
                state,
                ticker: None,
            };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {prefix} files · {bytes} sent · {binary_bytes_per_sec} · {wide_msg}",
            )
            .expect("static template is valid"),
        );
        bar.set_prefix(format!("0/{total_files}"));
        bar.enable_steady_tick(TICK);
        let ticker = tokio::spawn({
            let (bar, state) = (bar.clone(), state.clone());
            async move {
                loop {
                    update(&bar, &state, total_files);
                    tokio::time::sleep(TICK).await;
                }
            }
        });
        Live {
            bar,
            total_files,
            state,
            ticker: Some(ticker),
        }
    }

    /// File `i` named `name` starts: the counter its scan must fill.
    pub(crate) fn start(&self, i: usize, name: String) -> Progress {
        let p = Progress::default();
        self.lock().in_flight.insert(i, (name, p.clone()));
        p
    }

    /// File `i` is done (its bytes sent stay counted).
    pub(crate) fn finish(&self, i: usize) {
        {
            let mut s = self.lock();
            if let Some((_, p)) = s.in_flight.remove(&i) {
                s.done_bytes = s.done_bytes.saturating_add(p.bytes());
            }
            s.done_files = s.done_files.saturating_add(1);
        }
        update(&self.bar, &self.state, self.total_files);
    }

    /// Runs `f` (which prints) with the line cleared, then redraws it.
    pub(crate) fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Body bytes sent in all, so far.
    pub(crate) fn bytes_sent(&self) -> u64 {
        let s = self.lock();
        s.in_flight
            .values()
            .fold(s.done_bytes, |n, (_, p)| n.saturating_add(p.bytes()))
    }

    /// Stops the ticker and removes the line (whoever still holds a clone of `self`).
    pub(crate) fn close(&self) {
        if let Some(t) = &self.ticker {
            t.abort();
        }
        self.bar.finish_and_clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // A panic while holding it cannot leave the counters inconsistent: use them anyway.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn update(bar: &ProgressBar, state: &Mutex<State>, total_files: u64) {
    let s = lock(state);
    let sent = s
        .in_flight
        .values()
        .fold(s.done_bytes, |n, (_, p)| n.saturating_add(p.bytes()));
    let mut names: Vec<String> = s
        .in_flight
        .values()
        .take(SHOWN_IN_FLIGHT)
        .map(|(n, _)| shown(n))
        .collect();
    if s.in_flight.len() > SHOWN_IN_FLIGHT {
        names.push(format!("+{} more", s.in_flight.len() - SHOWN_IN_FLIGHT));
    }
    let done = s.done_files;
    drop(s);
    bar.set_prefix(format!("{done}/{total_files}"));
    bar.set_position(sent);
    bar.set_message(names.join(", "));
}
