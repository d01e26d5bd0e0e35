//! Transport faults on the proxied path, in Toxiproxy's vocabulary: latency with jitter,
//! bandwidth per direction, slicing, a reset or close after N bytes in either direction, a
//! slow close and a timeout.
//!
//! "Down" is the upstream's answer on its way to the client, "up" is the client's request
//! on its way to the upstream. The faults act on the bytes the proxy writes, so the client
//! under test sees exactly what a bad network between it and its server would show it:
//!
//! | fault | Toxiproxy | what the client sees |
//! |---|---|---|
//! | [`latency`](TransportFaults::latency) | `latency` (+ `jitter`) | the answer starts late |
//! | [`bandwidth_down`](TransportFaults::bandwidth_down) / [`bandwidth_up`](TransportFaults::bandwidth_up) | `bandwidth` | slow answer / slow upload |
//! | [`slice`](TransportFaults::slice) | `slicer` | the answer in small writes (torn heads, torn chunk lines) |
//! | [`cut_down`](TransportFaults::cut_down) / [`cut_up`](TransportFaults::cut_up) | `limit_data`, `reset_peer` | a close or reset after N bytes of the answer / of the request |
//! | [`slow_close`](TransportFaults::slow_close) | `slow_close` | the close comes late after the last byte |
//! | [`timeout`](TransportFaults::timeout) | `timeout` | nothing passes any more; closed after the time (never for zero) |

use std::time::Duration;

/// How a cut ends the client's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cut {
    /// An orderly close (FIN).
    Close,
    /// A reset (RST), where there is TCP.
    Reset,
}

/// The transport faults of one upstream (all off by default).
///
/// ```
/// use icap_mock_server::transport_faults::{Cut, TransportFaults};
/// use std::time::Duration;
/// let f = TransportFaults::default()
///     .latency(Duration::from_millis(200), Duration::from_millis(50))
///     .bandwidth_down(64 * 1024)
///     .slice(7)
///     .cut_down(100, Cut::Reset);
/// assert!(!f.is_off());
/// assert!(TransportFaults::default().is_off());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportFaults {
    pub(crate) latency: Duration,
    pub(crate) jitter: Duration,
    pub(crate) rate_down: Option<u64>,
    pub(crate) rate_up: Option<u64>,
    pub(crate) slice: Option<usize>,
    pub(crate) cut_down: Option<(u64, Cut)>,
    pub(crate) cut_up: Option<(u64, Cut)>,
    pub(crate) slow_close: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
}

impl TransportFaults {
    /// Delays each answer by `latency`, plus or minus up to `jitter`.
    #[must_use]
    pub fn latency(mut self, latency: Duration, jitter: Duration) -> Self {
        self.latency = latency;
        self.jitter = jitter;
        self
    }

    /// Passes the answer at most `bytes_per_sec` (at least 1).
    #[must_use]
    pub fn bandwidth_down(mut self, bytes_per_sec: u64) -> Self {
        self.rate_down = Some(bytes_per_sec.max(1));
        self
    }

    /// Passes the request to the upstream at most `bytes_per_sec` (at least 1); the
    /// client's upload slows down with it once the buffers are full.
    #[must_use]
    pub fn bandwidth_up(mut self, bytes_per_sec: u64) -> Self {
        self.rate_up = Some(bytes_per_sec.max(1));
        self
    }

    /// Writes in pieces of at most `bytes` (at least 1), each flushed on its own.
    #[must_use]
    pub fn slice(mut self, bytes: usize) -> Self {
        self.slice = Some(bytes.max(1));
        self
    }

    /// Ends the client's connection after `bytes` of the answer.
    #[must_use]
    pub fn cut_down(mut self, bytes: u64, how: Cut) -> Self {
        self.cut_down = Some((bytes, how));
        self
    }

    /// Ends the client's connection after `bytes` of its request were forwarded.
    #[must_use]
    pub fn cut_up(mut self, bytes: u64, how: Cut) -> Self {
        self.cut_up = Some((bytes, how));
        self
    }

    /// Waits `d` before each close of the client's connection.
    #[must_use]
    pub fn slow_close(mut self, d: Duration) -> Self {
        self.slow_close = Some(d);
        self
    }

    /// Stops forwarding: the request is read and dropped, nothing is answered, and the
    /// connection closes after `d` (never for zero, until the client gives up).
    #[must_use]
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Parses the text form used by `--transport-faults` and the configuration file: a
    /// comma-separated list of `latency=MS`, `jitter=MS`, `bandwidth_down=BYTES_PER_SEC`,
    /// `bandwidth_up=BYTES_PER_SEC`, `slice=BYTES`, `cut_down=BYTES[:close|:reset]`,
    /// `cut_up=BYTES[:close|:reset]`, `slow_close=MS`, `timeout=MS`.
    ///
    /// ```
    /// use icap_mock_server::transport_faults::{Cut, TransportFaults};
    /// use std::time::Duration;
    /// let f = TransportFaults::parse("latency=200, jitter=20, cut_down=64:reset").unwrap();
    /// assert_eq!(
    ///     f,
    ///     TransportFaults::default()
    ///         .latency(Duration::from_millis(200), Duration::from_millis(20))
    ///         .cut_down(64, Cut::Reset)
    /// );
    /// assert!(TransportFaults::parse("latency=soon").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut f = TransportFaults::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("transport fault {item:?}: expected name=value"))?;
            let (num, how) = value.split_once(':').unwrap_or((value, "close"));
            let n: u64 = num
                .trim()
                .parse()
                .map_err(|_| format!("transport fault {item:?}: {num:?} is not a number"))?;
            let ms = Duration::from_millis(n);
            let cut = match how.trim() {
                "close" => Cut::Close,
                "reset" => Cut::Reset,
                other => {
                    return Err(format!(
                        "transport fault {item:?}: {other:?} is not close or reset"
                    ));
                }
            };
            f = match key.trim() {
                "latency" => {
                    let jitter = f.jitter;
                    f.latency(ms, jitter)
                }
                "jitter" => {
                    let latency = f.latency;
                    f.latency(latency, ms)
                }
                "bandwidth_down" => f.bandwidth_down(n),
                "bandwidth_up" => f.bandwidth_up(n),
                "slice" => f.slice(usize::try_from(n).unwrap_or(usize::MAX)),
                "cut_down" => f.cut_down(n, cut),
                "cut_up" => f.cut_up(n, cut),
                "slow_close" => f.slow_close(ms),
                "timeout" => f.timeout(ms),
                other => return Err(format!("unknown transport fault {other:?}")),
            };
        }
        Ok(f)
    }

    /// Whether no fault is set.
    pub fn is_off(&self) -> bool {
        *self == TransportFaults::default()
    }

    /// The latency for one answer, jitter drawn from `seed`.
    pub(crate) fn latency_for(&self, seed: u64) -> Duration {
        if self.jitter.is_zero() {
            return self.latency;
        }
        let mut state = seed;
        let span = u64::try_from(self.jitter.as_micros())
            .unwrap_or(u64::MAX)
            .saturating_mul(2)
            .saturating_add(1);
        let draw = crate::rng::splitmix64(&mut state) % span;
        let jitter = u64::try_from(self.jitter.as_micros()).unwrap_or(u64::MAX);
        let base = u64::try_from(self.latency.as_micros()).unwrap_or(u64::MAX);
        // base - jitter + draw, never below zero.
        Duration::from_micros(base.saturating_add(draw).saturating_sub(jitter))
    }
}

/// One direction's shaping: how much may be written next, and the wait after it.
#[derive(Debug)]
pub(crate) struct Shaper {
    slice: Option<usize>,
    rate: Option<u64>,
    cut: Option<(u64, Cut)>,
    sent: u64,
}

impl Shaper {
    pub(crate) fn down(f: &TransportFaults) -> Self {
        Shaper {
            slice: f.slice,
            rate: f.rate_down,
            cut: f.cut_down,
            sent: 0,
        }
    }

    pub(crate) fn up(f: &TransportFaults) -> Self {
        Shaper {
            slice: f.slice,
            rate: f.rate_up,
            cut: f.cut_up,
            sent: 0,
        }
    }

    /// Whether any shaping applies (otherwise writes go out whole).
    pub(crate) fn is_off(&self) -> bool {
        self.slice.is_none() && self.rate.is_none() && self.cut.is_none()
    }

    /// How many of `remaining` bytes to write next; `Err` when the cut was reached.
    pub(crate) fn next_piece(&self, remaining: usize) -> Result<usize, Cut> {
        let mut n = remaining;
        if let Some(s) = self.slice {
            n = n.min(s);
        }
        if let Some((limit, how)) = self.cut {
            let left = limit.saturating_sub(self.sent);
            if left == 0 {
                return Err(how);
            }
            n = n.min(usize::try_from(left).unwrap_or(usize::MAX));
        }
        if let Some(rate) = self.rate {
            // At most a tenth of a second's worth per write, so the pace stays even.
            let tenth = usize::try_from((rate / 10).max(1)).unwrap_or(usize::MAX);
            n = n.min(tenth);
        }
        Ok(n)
    }

    /// Notes `n` bytes written; the wait before the next write.
    pub(crate) fn wrote(&mut self, n: usize) -> Duration {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.sent = self.sent.saturating_add(n);
        match self.rate {
            Some(rate) => {
                let micros = u128::from(n) * 1_000_000 / u128::from(rate.max(1));
                Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
            }
            None => Duration::ZERO,
        }
    }

    /// The cut, when exactly its byte count has gone out.
    pub(crate) fn cut_reached(&self) -> Option<Cut> {
        self.cut
            .and_then(|(limit, how)| (self.sent >= limit).then_some(how))
    }
}

#[cfg(test)]
mod tests {
    use super::{Cut, Shaper, TransportFaults};
    use std::time::Duration;

    #[test]
    fn pieces_respect_slice_cut_and_rate() {
        let f = TransportFaults::default()
            .slice(10)
            .cut_down(25, Cut::Close);
        let mut s = Shaper::down(&f);
        let mut got = Vec::new();
        let mut left = 100usize;
        while let Ok(n) = s.next_piece(left) {
            got.push(n);
            left -= n;
            s.wrote(n);
        }
        assert_eq!(got, [10, 10, 5]);
        assert_eq!(s.cut_reached(), Some(Cut::Close));

        let f = TransportFaults::default().bandwidth_down(1000);
        let mut s = Shaper::down(&f);
        assert_eq!(s.next_piece(5000), Ok(100));
        assert_eq!(s.wrote(100), Duration::from_millis(100));
        assert!(Shaper::up(&f).is_off());
    }

    #[test]
    fn jitter_stays_in_its_band_and_never_overflows() {
        let f = TransportFaults::default()
            .latency(Duration::from_millis(100), Duration::from_millis(20));
        for seed in 0..200 {
            let d = f.latency_for(seed);
            assert!(
                d >= Duration::from_millis(80) && d <= Duration::from_millis(120),
                "{d:?}"
            );
        }
        let f = TransportFaults::default().latency(Duration::MAX, Duration::MAX);
        let _ = f.latency_for(7);
        let f = TransportFaults::default().latency(Duration::ZERO, Duration::from_millis(5));
        assert!(f.latency_for(3) <= Duration::from_millis(5));
    }
}
