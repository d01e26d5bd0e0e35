//! Settings of the client that are plain values: timeouts, TLS, preview, failover, health.

use std::path::PathBuf;
use std::time::Duration;

/// The longest any timeout, deadline or delay of the client may be: one year (365 days).
/// Setters clamp larger values to it, and every deadline is computed with checked addition
/// (`instant_after`), so no timeout can overflow an `Instant`.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// TCP keepalive on client sockets: after `idle` without traffic the kernel sends probes
/// every `interval`, so a half-open connection (the server rebooted, a NAT forgot it) is
/// noticed before the idle timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Time without traffic before the first probe. Default 30 s.
    pub idle: Duration,
    /// Time between probes. Default 10 s.
    pub interval: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            idle: Duration::from_secs(30),
            interval: Duration::from_secs(10),
        }
    }
}

impl Keepalive {
    /// Keepalive with these times, each clamped to 1 s ..= 1 day (the kernel counts whole
    /// seconds, and refuses more than about 9 hours on some systems; a day is already
    /// past any use).
    pub fn new(idle: Duration, interval: Duration) -> Self {
        let clamp = |d: Duration| d.clamp(Duration::from_secs(1), Duration::from_secs(86_400));
        Keepalive {
            idle: clamp(idle),
            interval: clamp(interval),
        }
    }
}

/// The timeouts of a scan. Every phase has its own; the whole scan also has a deadline that
/// grows with the file size, because large files legitimately take longer to scan.
///
/// The setters clamp every value to [`MAX_TIMEOUT`] (one year); [`Timeouts::clamped`] does the
/// same for values written to the fields directly.
///
/// ```
/// use std::time::Duration;
/// use icap_client::Timeouts;
/// let t = Timeouts::default().with_deadline(Duration::from_secs(30), Duration::from_millis(500));
/// // 30 s plus 0.5 s per MiB: 10 MiB may take 35 s.
/// assert_eq!(t.deadline_for(10 * 1024 * 1024), Duration::from_secs(35));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening the TCP connection. Default 5 s.
    pub connect: Duration,
    /// The TLS handshake. Default 5 s.
    pub tls_handshake: Duration,
    /// Waiting for `100 Continue` after a preview. Default 15 s.
    pub continue_wait: Duration,
    /// Longest time without any progress while sending or receiving. Default 30 s.
    pub idle: Duration,
    /// Base of the whole-scan deadline. Default 60 s.
    pub deadline: Duration,
    /// Added to the deadline per MiB of body. Default 1 s.
    pub deadline_per_mib: Duration,
    /// TCP keepalive on every connection; `None` turns it off. Default on (30 s, 10 s).
    pub keepalive: Option<Keepalive>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            tls_handshake: Duration::from_secs(5),
            continue_wait: Duration::from_secs(15),
            idle: Duration::from_secs(30),
            deadline: Duration::from_secs(60),
            deadline_per_mib: Duration::from_secs(1),
            keepalive: Some(Keepalive::default()),
        }
    }
}

impl Timeouts {
    /// Sets [`Timeouts::connect`] (at most [`MAX_TIMEOUT`]).
    pub fn with_connect(mut self, d: Duration) -> Self {
        self.connect = d.min(MAX_TIMEOUT);
        self
    }
    /// Sets [`Timeouts::tls_handshake`] (at most [`MAX_TIMEOUT`]).
    pub fn with_tls_handshake(mut self, d: Duration) -> Self {
        self.tls_handshake = d.min(MAX_TIMEOUT);
        self
    }
    /// Sets [`Timeouts::continue_wait`] (at most [`MAX_TIMEOUT`]).
    pub fn with_continue_wait(mut self, d: Duration) -> Self {
        self.continue_wait = d.min(MAX_TIMEOUT);
        self
    }
    /// Sets [`Timeouts::idle`] (at most [`MAX_TIMEOUT`]).
    pub fn with_idle(mut self, d: Duration) -> Self {
        self.idle = d.min(MAX_TIMEOUT);
        self
    }
    /// Sets the whole-scan deadline: `base` plus `per_mib` for each MiB of body (each at
    /// most [`MAX_TIMEOUT`]).
    pub fn with_deadline(mut self, base: Duration, per_mib: Duration) -> Self {
        self.deadline = base.min(MAX_TIMEOUT);
        self.deadline_per_mib = per_mib.min(MAX_TIMEOUT);
        self
    }
    /// Sets [`Timeouts::keepalive`] (`None`: off).
    pub fn with_keepalive(mut self, k: Option<Keepalive>) -> Self {
        self.keepalive = k.map(|k| Keepalive::new(k.idle, k.interval));
        self
    }
    /// Every field clamped as the setters do: for timeouts written to the public fields.
    ///
    /// ```
    /// use std::time::Duration;
    /// use icap_client::{MAX_TIMEOUT, Timeouts};
    /// let mut t = Timeouts::default();
    /// t.idle = Duration::MAX;
    /// assert_eq!(t.clamped().idle, MAX_TIMEOUT);
    /// ```
    pub fn clamped(self) -> Self {
        Timeouts {
            connect: self.connect.min(MAX_TIMEOUT),
            tls_handshake: self.tls_handshake.min(MAX_TIMEOUT),
            continue_wait: self.continue_wait.min(MAX_TIMEOUT),
            idle: self.idle.min(MAX_TIMEOUT),
            deadline: self.deadline.min(MAX_TIMEOUT),
            deadline_per_mib: self.deadline_per_mib.min(MAX_TIMEOUT),
            keepalive: self.keepalive.map(|k| Keepalive::new(k.idle, k.interval)),
        }
    }
    /// The deadline of a scan of `size` bytes, at most [`MAX_TIMEOUT`] (whatever the size
    /// and the fields hold: the arithmetic saturates).
    pub fn deadline_for(&self, size: u64) -> Duration {
        // Precision loss above 2^52 bytes is irrelevant for a deadline.
        #[allow(clippy::cast_precision_loss)]
        let mib = size as f64 / (1024.0 * 1024.0);
        let per_mib = self.deadline_per_mib.min(MAX_TIMEOUT).as_secs_f64();
        // A product too large (or not finite) for a Duration is past the maximum anyway.
        let growth = Duration::try_from_secs_f64(per_mib * mib).unwrap_or(MAX_TIMEOUT);
        self.deadline.saturating_add(growth).min(MAX_TIMEOUT)
    }
}

/// `now + d`, or a time [`MAX_TIMEOUT`] from now if that overflows (or `now` itself if even
/// that does): for timers whose length comes from a peer or a setting.
pub(crate) fn instant_after(now: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(MAX_TIMEOUT))
        .unwrap_or(now)
}

/// Which certificate authorities a TLS connection trusts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Roots {
    /// The Mozilla root program (`webpki-roots`), plus `/etc/ssl/certs/ca-certificates.crt`
    /// when it exists.
    #[default]
    System,
    /// The CA certificates in a PEM file (only these).
    CaFile(PathBuf),
    /// The CA certificates in a PEM string (only these).
    CaPem(String),
}

/// Settings for `icaps://` servers ("Secure ICAP").
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Trusted roots.
    pub roots: Roots,
    /// Server name sent in SNI and checked against the certificate, instead of the URL's host.
    pub sni: Option<String>,
    /// Client certificate and key (PEM files) for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Client certificate and key as PEM strings.
    pub client_cert_pem: Option<(String, String)>,
    /// Accept any certificate. Never do this in production: every connection logs a warning.
    pub danger_accept_invalid_certs: bool,
}

/// How the preview size is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PreviewMode {
    /// Use the `Preview` the service announces in `OPTIONS` (none if it announces none).
    #[default]
    Auto,
    /// Never send a preview.
    Off,
    /// Always send a preview of this many bytes.
    Fixed(u64),
}

/// How a scan picks among several servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The first server that is up; the next ones only when it fails or is down.
    #[default]
    Failover,
    /// Rotate over the servers that are up.
    RoundRobin,
}

/// When a server counts as down and when it is tried again. The durations are clamped to
/// [`MAX_TIMEOUT`] where they are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// Failures within [`HealthConfig::window`] that mark a server down. Default 3.
    pub threshold: u32,
    /// The window in which failures are counted. Default 60 s.
    pub window: Duration,
    /// How long a server stays down before an `OPTIONS` probe may bring it back. Default 10 s.
    pub revival: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            threshold: 3,
            window: Duration::from_secs(60),
            revival: Duration::from_secs(10),
        }
    }
}

/// The default file size limit: 25 MB, as in common upload products.
pub const DEFAULT_MAX_SIZE: u64 = 25 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_clamp_to_the_maximum() {
        let t = Timeouts::default()
            .with_connect(Duration::MAX)
            .with_tls_handshake(Duration::MAX)
            .with_continue_wait(Duration::MAX)
            .with_idle(Duration::MAX)
            .with_deadline(Duration::MAX, Duration::MAX);
        for d in [
            t.connect,
            t.tls_handshake,
            t.continue_wait,
            t.idle,
            t.deadline,
            t.deadline_per_mib,
        ] {
            assert_eq!(d, MAX_TIMEOUT);
        }
        assert_eq!(
            Timeouts::default().with_idle(Duration::from_secs(7)).idle,
            Duration::from_secs(7)
        );
    }

    #[test]
    fn deadline_for_never_overflows() {
        let t = Timeouts {
            deadline: Duration::MAX,
            deadline_per_mib: Duration::MAX,
            ..Timeouts::default()
        };
        assert_eq!(t.deadline_for(u64::MAX), MAX_TIMEOUT);
        assert_eq!(t.deadline_for(0), MAX_TIMEOUT);
        let t = Timeouts::default().with_deadline(Duration::from_secs(1), MAX_TIMEOUT);
        assert_eq!(t.deadline_for(u64::MAX), MAX_TIMEOUT);
        assert_eq!(
            Timeouts::default().deadline_for(2 * 1024 * 1024),
            Duration::from_secs(62)
        );
    }

    #[test]
    fn instant_after_saturates() {
        let now = tokio::time::Instant::now();
        assert_eq!(
            instant_after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(instant_after(now, Duration::MAX), now + MAX_TIMEOUT);
    }

    #[test]
    fn keepalive_is_clamped() {
        let k = Keepalive::new(Duration::ZERO, Duration::MAX);
        assert_eq!(k.idle, Duration::from_secs(1));
        assert_eq!(k.interval, Duration::from_secs(86_400));
        let t = Timeouts::default().with_keepalive(Some(k));
        assert_eq!(t.keepalive, Some(k));
        assert_eq!(Timeouts::default().with_keepalive(None).keepalive, None);
    }
}
