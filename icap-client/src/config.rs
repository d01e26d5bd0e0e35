//! Settings of the client that are plain values: timeouts, TLS, preview, failover, health.

use std::path::PathBuf;
use std::time::Duration;

/// The timeouts of a scan. Every phase has its own; the whole scan also has a deadline that
/// grows with the file size, because large files legitimately take longer to scan.
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
        }
    }
}

impl Timeouts {
    /// Sets [`Timeouts::connect`].
    pub fn with_connect(mut self, d: Duration) -> Self {
        self.connect = d;
        self
    }
    /// Sets [`Timeouts::tls_handshake`].
    pub fn with_tls_handshake(mut self, d: Duration) -> Self {
        self.tls_handshake = d;
        self
    }
    /// Sets [`Timeouts::continue_wait`].
    pub fn with_continue_wait(mut self, d: Duration) -> Self {
        self.continue_wait = d;
        self
    }
    /// Sets [`Timeouts::idle`].
    pub fn with_idle(mut self, d: Duration) -> Self {
        self.idle = d;
        self
    }
    /// Sets the whole-scan deadline: `base` plus `per_mib` for each MiB of body.
    pub fn with_deadline(mut self, base: Duration, per_mib: Duration) -> Self {
        self.deadline = base;
        self.deadline_per_mib = per_mib;
        self
    }
    /// The deadline of a scan of `size` bytes.
    pub fn deadline_for(&self, size: u64) -> Duration {
        // Precision loss above 2^52 bytes is irrelevant for a deadline.
        #[allow(clippy::cast_precision_loss)]
        let mib = size as f64 / (1024.0 * 1024.0);
        self.deadline + self.deadline_per_mib.mul_f64(mib)
    }
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

/// When a server counts as down and when it is tried again.
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
