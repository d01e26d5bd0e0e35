//! Services: what one ICAP service path offers and how it reports infections.

use std::time::Duration;

use icap_proto::Method;
use serde::{Deserialize, Serialize};

/// How a service words its answers: the shapes real antivirus products send.
///
/// | dialect | infected | clean |
/// |---|---|---|
/// | [`Dialect::CIcap`] | `200`, `X-Infection-Found`, folded `X-Violations-Found`, embedded `HTTP/1.0 403 Forbidden` block page | `204` / `200` echo |
/// | [`Dialect::Symantec`] | `201 Created`, `X-Infection-Found` then `X-Violations-Found`, embedded 403 page | `204` / `200` echo |
/// | [`Dialect::Kaspersky`] | `200`, `X-Virus-ID: name`, embedded 403 page | adds `X-Virus-ID: no threats` |
/// | [`Dialect::Sophos`] | `200`, `X-Virus-ID`, embedded 403 with `X-Blocked` | `204` / `200` echo |
/// | [`Dialect::McAfee`] | `200`, embedded `HTTP/1.1 403 VirusFound` only | `204` / `200` echo |
/// | [`Dialect::Plain`] | `200`, `X-Virus-ID` and a bare embedded 403 head | `204` / `200` echo |
/// | [`Dialect::Eset`] | `200`, `X-Infection-Found`, `X-Virus-ID`, `X-Response-Info: Blocked`, embedded empty 403 | `204` / `200` echo |
///
/// `204`, `500` and `503` answers carry `Encapsulated: null-body=0` (RFC 3507 §4.4.1) in
/// every dialect but `c-icap` and `mcafee`, whose servers send none (see the README's
/// dialect table for each source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// c-icap with its `ClamAV` module (`squidclamav` and `virus_scan` answer alike).
    #[default]
    #[serde(rename = "c-icap", alias = "clamav", alias = "cicap")]
    CIcap,
    /// Symantec Protection Engine.
    Symantec,
    /// Kaspersky Scan Engine / Anti-Virus for Proxy Server.
    Kaspersky,
    /// Sophos (SAVDI).
    Sophos,
    /// `McAfee` Web Gateway.
    #[serde(rename = "mcafee")]
    McAfee,
    /// Just `X-Virus-ID`.
    Plain,
    /// ESET Server Security for Linux (its ICAP server).
    Eset,
}

/// A dialect name that is none of the built-in ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dialect {name:?}; valid dialects: {}", Dialect::names())]
#[non_exhaustive]
pub struct UnknownDialect {
    /// The name given.
    pub name: String,
}

impl std::str::FromStr for Dialect {
    type Err = UnknownDialect;

    /// A dialect by its name ([`Dialect::name`]) or an alias (`clamav`, `cicap`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|_| UnknownDialect { name: s.to_owned() })
    }
}

impl Dialect {
    /// Every built-in dialect, in the README's order.
    pub const ALL: [Dialect; 7] = [
        Dialect::CIcap,
        Dialect::Symantec,
        Dialect::Kaspersky,
        Dialect::Sophos,
        Dialect::McAfee,
        Dialect::Plain,
        Dialect::Eset,
    ];

    /// The name config files, the admin API and `--dialect` use.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::CIcap => "c-icap",
            Dialect::Symantec => "symantec",
            Dialect::Kaspersky => "kaspersky",
            Dialect::Sophos => "sophos",
            Dialect::McAfee => "mcafee",
            Dialect::Plain => "plain",
            Dialect::Eset => "eset",
        }
    }

    /// Every dialect's name, comma-separated.
    fn names() -> String {
        Dialect::ALL.map(Dialect::name).join(", ")
    }

    /// The name this product gives the EICAR test file.
    pub fn eicar_name(self) -> &'static str {
        match self {
            Dialect::CIcap | Dialect::Plain => "Eicar-Test-Signature",
            Dialect::Symantec => "EICAR Test String",
            Dialect::Kaspersky => "EICAR-Test-File",
            Dialect::Sophos => "EICAR-AV-Test",
            Dialect::McAfee => "EICAR test file",
            Dialect::Eset => "Eicar",
        }
    }

    /// Whether this dialect's bodyless answers (`204`, `500`, `503`) carry
    /// `Encapsulated: null-body=0`, as RFC 3507 §4.4.1 asks. c-icap 0.5.10 sends none
    /// (captured); neither does `McAfee` on its `204` (a client that reads until
    /// `Encapsulated` hangs on it, `owncloud/files_antivirus` PR 445).
    pub fn frames_bodyless_answers(self) -> bool {
        !matches!(self, Dialect::CIcap | Dialect::McAfee)
    }
}

/// A configured signature: what makes the service report an infection besides EICAR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Signature {
    /// The body contains these bytes (found across chunk boundaries).
    Bytes {
        /// The byte pattern (UTF-8 text in configuration files).
        pattern: String,
        /// The threat name reported.
        name: String,
    },
    /// The SHA-256 of the whole body (lowercase or uppercase hex).
    Sha256 {
        /// 64 hex digits.
        sha256: String,
        /// The threat name reported.
        name: String,
    },
    /// The file name (from `Content-Disposition` or the URL path) matches a glob pattern
    /// (`*` and `?`, case-insensitive).
    FileName {
        /// Glob such as `*.exe`.
        filename: String,
        /// The threat name reported.
        name: String,
    },
}

impl Signature {
    /// The threat name this signature reports.
    pub fn name(&self) -> &str {
        match self {
            Signature::Bytes { name, .. }
            | Signature::Sha256 { name, .. }
            | Signature::FileName { name, .. } => name,
        }
    }
}

/// One ICAP service of the mock: its path, methods, `OPTIONS` answer and dialect.
///
/// ```
/// use icap_mock_server::{Dialect, ServiceConfig};
/// use icap_proto::Method;
/// let svc = ServiceConfig::new("avscan")
///     .dialect(Dialect::Symantec)
///     .preview(Some(4096))
///     .allow_204(true)
///     .max_connections(Some(4))
///     .methods(&[Method::Respmod]);
/// assert_eq!(svc.name(), "avscan");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub(crate) name: String,
    pub(crate) dialect: Dialect,
    pub(crate) methods: Vec<Method>,
    pub(crate) preview: Option<u64>,
    pub(crate) allow_204: bool,
    pub(crate) max_connections: Option<u32>,
    pub(crate) options_ttl: Option<Duration>,
    pub(crate) transfer_preview: Vec<String>,
    pub(crate) transfer_ignore: Vec<String>,
    pub(crate) transfer_complete: Vec<String>,
    pub(crate) description: String,
    pub(crate) eicar: bool,
    pub(crate) signatures: Vec<Signature>,
    pub(crate) echo_threshold: usize,
    pub(crate) upstream: Option<crate::proxy::upstream::Upstream>,
}

/// Default size above which a `200` echo starts while the body is still arriving.
pub const DEFAULT_ECHO_THRESHOLD: usize = 32 * 1024;

impl ServiceConfig {
    /// A service at `icap://host/<name>` with the defaults: RESPMOD and REQMOD, EICAR
    /// detection, the c-icap dialect, `Preview: 1024`, `Transfer-Preview: *`, `Allow: 204`,
    /// `Max-Connections: 100`, `Options-TTL: 3600`.
    pub fn new(name: &str) -> Self {
        ServiceConfig {
            name: name.trim_start_matches('/').to_owned(),
            dialect: Dialect::CIcap,
            methods: vec![Method::Respmod, Method::Reqmod],
            preview: Some(1024),
            allow_204: true,
            max_connections: Some(100),
            options_ttl: Some(Duration::from_secs(3600)),
            transfer_preview: vec!["*".to_owned()],
            transfer_ignore: Vec::new(),
            transfer_complete: Vec::new(),
            description: "icap-mock-server antivirus".to_owned(),
            eicar: true,
            signatures: Vec::new(),
            echo_threshold: DEFAULT_ECHO_THRESHOLD,
            upstream: None,
        }
    }

    /// Proxy mode for this service: requests no rule answers go to `upstream`, and its
    /// answers come back (see [`crate::proxy`]).
    #[must_use]
    pub fn upstream(mut self, upstream: crate::proxy::upstream::Upstream) -> Self {
        self.upstream = Some(upstream);
        self
    }

    /// The service name (the URI path without its `/`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets how infections are reported.
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// Sets the `Preview` size offered in `OPTIONS` (`None`: no preview).
    pub fn preview(mut self, preview: Option<u64>) -> Self {
        self.preview = preview;
        self
    }

    /// Whether `OPTIONS` says `Allow: 204`.
    pub fn allow_204(mut self, allow: bool) -> Self {
        self.allow_204 = allow;
        self
    }

    /// Sets `Max-Connections`; beyond it a connection's requests get `503` (`None`: no limit).
    pub fn max_connections(mut self, max: Option<u32>) -> Self {
        self.max_connections = max;
        self
    }

    /// The methods the service accepts (`OPTIONS` is always accepted); others get `405`.
    pub fn methods(mut self, methods: &[Method]) -> Self {
        self.methods = methods
            .iter()
            .copied()
            .filter(|m| *m != Method::Options)
            .collect();
        self
    }

    /// Sets `Options-TTL` (`None`: not sent).
    pub fn options_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.options_ttl = ttl;
        self
    }

    /// Sets `Transfer-Preview`, `Transfer-Ignore` and `Transfer-Complete` (file extensions).
    pub fn transfer(mut self, preview: &[&str], ignore: &[&str], complete: &[&str]) -> Self {
        let own = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        self.transfer_preview = own(preview);
        self.transfer_ignore = own(ignore);
        self.transfer_complete = own(complete);
        self
    }

    /// Sets the `Service` text of `OPTIONS`.
    pub fn description(mut self, text: &str) -> Self {
        text.clone_into(&mut self.description);
        self
    }

    /// Turns the built-in EICAR detection on or off (on by default).
    pub fn eicar(mut self, on: bool) -> Self {
        self.eicar = on;
        self
    }

    /// Adds a signature.
    pub fn signature(mut self, signature: Signature) -> Self {
        self.signatures.push(signature);
        self
    }

    /// Reports `name` when the body contains `pattern`.
    pub fn signature_bytes(self, pattern: &str, name: &str) -> Self {
        self.signature(Signature::Bytes {
            pattern: pattern.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Reports `name` when the SHA-256 of the whole body is `sha256_hex`.
    pub fn signature_sha256(self, sha256_hex: &str, name: &str) -> Self {
        self.signature(Signature::Sha256 {
            sha256: sha256_hex.to_ascii_lowercase(),
            name: name.to_owned(),
        })
    }

    /// Reports `name` when the file name matches `glob` (`*`, `?`, case-insensitive).
    pub fn signature_filename(self, glob: &str, name: &str) -> Self {
        self.signature(Signature::FileName {
            filename: glob.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Above this many body bytes, a clean message the client did not allow a `204` for is
    /// echoed (`200`) while it still arrives, instead of being held in memory. A verdict
    /// that changes after the echo started (EICAR late in a huge body) then aborts the
    /// connection, as streaming scanners do. Default 32 KiB.
    pub fn echo_threshold(mut self, bytes: usize) -> Self {
        self.echo_threshold = bytes;
        self
    }
}

/// Whether `name` matches the glob `pattern` (`*` any run, `?` one character), ignoring
/// ASCII case.
///
/// Hand-written on purpose: a dozen lines with no backtracking blow-up (one saved star),
/// where a glob crate would bring path semantics (`/`, `**`, classes) file names here
/// do not need.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let n: Vec<char> = name.chars().map(|c| c.to_ascii_lowercase()).collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn dialect_names_round_trip() {
        for d in super::Dialect::ALL {
            assert_eq!(d.name().parse::<super::Dialect>(), Ok(d));
        }
        let e = "clamv".parse::<super::Dialect>().unwrap_err().to_string();
        assert!(
            e.contains("\"clamv\"") && e.contains("c-icap, symantec"),
            "{e}"
        );
    }

    #[test]
    fn globs() {
        let rows = [
            ("*.exe", "setup.EXE", true),
            ("*.exe", "setup.exe.txt", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("*.timeout", "report.pdf.timeout", true),
            ("re*rt*", "report.pdf", true),
            ("x", "y", false),
        ];
        for (p, n, want) in rows {
            assert_eq!(glob_match(p, n), want, "{p} {n}");
        }
    }
}
