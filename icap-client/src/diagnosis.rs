//! The "ICAP Test": `OPTIONS` with a diagnosis a person can act on.

use std::error::Error as _;
use std::time::Duration;

use icap_proto::{Method, OptionsResponse};
use serde::Serialize;

use crate::client::Client;
use crate::error::{Error, ErrorKind, Phase, TlsProblem};
use crate::server::ServerHandle;
use crate::verdict::ser_duration_ms;

/// What the test found, as one word a program can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Diagnosis {
    /// The service answered `OPTIONS` and offers the configured method.
    Ok,
    /// Nothing listens on that port (connection refused).
    Refused,
    /// The host could not be reached or resolved, or the bind address is wrong.
    Unreachable,
    /// The TCP connection did not open in time (firewall dropping packets?).
    ConnectTimeout,
    /// The server's certificate is not signed by a trusted CA.
    TlsUntrusted,
    /// The server's certificate is for another name.
    TlsNameMismatch,
    /// The server's certificate has expired (or is not valid yet).
    TlsExpired,
    /// The server rejected our client certificate (or wants one).
    TlsClientCert,
    /// Another TLS failure (a plain server on a TLS port, no common cipher, ...).
    TlsOther,
    /// `404`: no such service on this server: the service name is wrong.
    ServiceNotFound,
    /// The service does not offer the method scans use.
    MethodNotOffered {
        /// The method.
        method: String,
    },
    /// A timeout.
    Timeout {
        /// Where.
        phase: Phase,
    },
    /// The server closed the connection without a complete answer.
    Closed,
    /// The `OPTIONS` answer has no `ISTag` (a MUST of RFC 3507 section 4.10.2): the service
    /// cannot be used, since no verdict could be tied to a signature version.
    MissingIsTag,
    /// The answer is not valid ICAP.
    Protocol,
    /// Another status.
    Status {
        /// The status.
        code: u16,
    },
}

/// The typed `OPTIONS` answer, flattened for printing and JSON.
#[derive(Debug, Clone, Serialize)]
pub struct OptionsSummary {
    /// `Methods`.
    pub methods: Vec<String>,
    /// `Service`.
    pub service: Option<String>,
    /// `ISTag`.
    pub istag: Option<String>,
    /// `Max-Connections`.
    pub max_connections: Option<u32>,
    /// `Options-TTL` in seconds.
    pub options_ttl: Option<u64>,
    /// `Preview`.
    pub preview: Option<u64>,
    /// `Allow: 204`.
    pub allow_204: bool,
    /// `Transfer-Preview`.
    pub transfer_preview: Vec<String>,
    /// `Transfer-Ignore`.
    pub transfer_ignore: Vec<String>,
    /// `Transfer-Complete`.
    pub transfer_complete: Vec<String>,
    /// `Service-ID`.
    pub service_id: Option<String>,
    /// What was not taken as sent (clamped `Preview` or `Options-TTL`, an ignored
    /// `Max-Connections`, a header given twice with different values), one sentence each.
    pub warnings: Vec<String>,
}

impl From<&OptionsResponse> for OptionsSummary {
    fn from(o: &OptionsResponse) -> Self {
        OptionsSummary {
            methods: o.methods.iter().map(|m| m.as_str().to_owned()).collect(),
            service: o.service.clone(),
            istag: o.istag.clone(),
            max_connections: o.max_connections,
            options_ttl: o.options_ttl.map(|d| d.as_secs()),
            preview: o.preview,
            allow_204: o.allow_204,
            transfer_preview: o.transfer_preview.clone(),
            transfer_ignore: o.transfer_ignore.clone(),
            transfer_complete: o.transfer_complete.clone(),
            service_id: o.service_id.clone(),
            warnings: o.warnings.iter().map(ToString::to_string).collect(),
        }
    }
}

/// The result of the ICAP Test against one server.
#[derive(Debug, Clone, Serialize)]
pub struct OptionsReport {
    /// The server URL.
    pub server: String,
    /// Whether everything is fine.
    pub ok: bool,
    /// What was found.
    pub diagnosis: Diagnosis,
    /// What to do about it.
    pub hint: String,
    /// The answer, when there was one.
    pub options: Option<OptionsSummary>,
    /// Time to open the connection (TCP + TLS), when a new one was opened.
    #[serde(serialize_with = "ser_opt_ms", rename = "connect_ms")]
    pub connect: Option<Duration>,
    /// Round-trip time of `OPTIONS`.
    #[serde(serialize_with = "ser_opt_ms", rename = "rtt_ms")]
    pub rtt: Option<Duration>,
    /// Whole test time.
    #[serde(serialize_with = "ser_duration_ms", rename = "total_ms")]
    pub total: Duration,
    /// TLS version, for `icaps://`.
    pub tls_version: Option<String>,
    /// TLS cipher suite, for `icaps://`.
    pub tls_cipher: Option<String>,
    /// The error, when the test failed.
    pub error: Option<Error>,
}

#[allow(clippy::ref_option)] // the signature serde's serialize_with requires
fn ser_opt_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
        None => s.serialize_none(),
    }
}

/// Whether `e` says the `OPTIONS` answer had no `ISTag`.
fn is_missing_istag(e: &Error) -> bool {
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(o) = s.downcast_ref::<icap_proto::OptionsError>() {
            return *o == icap_proto::OptionsError::MissingIsTag;
        }
        src = s.source();
    }
    false
}

/// The diagnosis and hint for an error.
pub fn diagnose(e: &Error) -> (Diagnosis, String) {
    if is_missing_istag(e) {
        return (
            Diagnosis::MissingIsTag,
            "the service is UNUSABLE: its OPTIONS answer has no ISTag, which RFC 3507 (section 4.10.2) requires; fix the server, or turn on the lenient ISTag switch if you accept verdicts not tied to a signature version".into(),
        );
    }
    let io_kind = {
        let mut src = e.source();
        let mut kind = None;
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                kind = Some(io.kind());
                break;
            }
            src = s.source();
        }
        kind
    };
    match e.kind() {
        ErrorKind::Connect if io_kind == Some(std::io::ErrorKind::ConnectionRefused) => (
            Diagnosis::Refused,
            "connection refused: is the ICAP server running, and is the port right (1344 for icap://, often 11344 for icaps://)?".into(),
        ),
        ErrorKind::Connect => (
            Diagnosis::Unreachable,
            "cannot reach the server: check the host name, routing, firewall and the local bind address".into(),
        ),
        ErrorKind::Timeout(Phase::Connect) => (
            Diagnosis::ConnectTimeout,
            "no answer to the TCP connection: a firewall may be dropping packets, or the host is down".into(),
        ),
        ErrorKind::Tls(TlsProblem::UnknownIssuer) => (
            Diagnosis::TlsUntrusted,
            "the server certificate is not trusted: give its CA with --tls-ca (or tls.ca_file)".into(),
        ),
        ErrorKind::Tls(TlsProblem::NameMismatch) => (
            Diagnosis::TlsNameMismatch,
            "the certificate is for another name: connect by the name in the certificate, or set --tls-sni".into(),
        ),
        ErrorKind::Tls(TlsProblem::Expired | TlsProblem::NotValidYet) => (
            Diagnosis::TlsExpired,
            "the server certificate is expired or not valid yet: renew it (and check the clocks)".into(),
        ),
        ErrorKind::Tls(TlsProblem::ClientCertRejected) => (
            Diagnosis::TlsClientCert,
            "the server wants a client certificate it trusts: set --tls-client-cert/--tls-client-key".into(),
        ),
        ErrorKind::Tls(TlsProblem::Refused) => (
            Diagnosis::TlsOther,
            "the server refused the TLS handshake: no TLS version or cipher suite in common, or it does not serve this name (--tls-sni); if it wants a client certificate, set --tls-client-cert/--tls-client-key".into(),
        ),
        ErrorKind::Tls(TlsProblem::Other) => (
            Diagnosis::TlsOther,
            "TLS failed: is the server really speaking TLS on this port (icaps://), with TLS 1.2 or 1.3?".into(),
        ),
        ErrorKind::Timeout(phase) => (
            Diagnosis::Timeout { phase: *phase },
            "the server accepted the connection but did not answer in time: is it an ICAP server, is it overloaded?".into(),
        ),
        ErrorKind::Status(404) => (
            Diagnosis::ServiceNotFound,
            "service not found: the service name (the URL path) is wrong; see the server's documentation (c-icap: virus_scan or srv_clamav, ...)".into(),
        ),
        ErrorKind::Status(405) => (
            Diagnosis::MethodNotOffered {
                method: "RESPMOD".into(),
            },
            "the service does not offer this method: use --reqmod/--respmod to match it, or another service".into(),
        ),
        ErrorKind::Status(code) => (
            Diagnosis::Status { code: *code },
            format!("the server answered {code}: check its logs"),
        ),
        ErrorKind::Closed => (
            Diagnosis::Closed,
            "the server closed the connection without answering: is it an ICAP server (TLS on a plain port?)".into(),
        ),
        _ => (
            Diagnosis::Protocol,
            "the answer is not valid ICAP: is this port really an ICAP server?".into(),
        ),
    }
}

impl Client {
    /// The ICAP Test against every configured server: `OPTIONS`, with a diagnosis, the
    /// answer and timings for each.
    pub async fn test(&self) -> Vec<OptionsReport> {
        let mut out = Vec::new();
        for server in self.server_handles() {
            out.push(self.test_server(&server).await);
        }
        out
    }

    /// The ICAP Test against one server (see [`Client::server`]).
    pub async fn test_server(&self, handle: &ServerHandle) -> OptionsReport {
        let start = tokio::time::Instant::now();
        let server = handle.url().to_owned();
        let method = self.method();
        match self.options_raw(handle).await {
            Ok((o, timing)) => {
                let offered = o.methods.is_empty() || o.supports(method);
                let (diagnosis, hint) = if offered {
                    (Diagnosis::Ok, "the service answers OPTIONS".to_owned())
                } else {
                    (
                        Diagnosis::MethodNotOffered {
                            method: method.as_str().into(),
                        },
                        format!(
                            "the service offers {} but scans use {method}: switch method or service",
                            o.methods
                                .iter()
                                .map(|m| m.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                };
                let (tls_version, tls_cipher) = timing.tls.clone().unzip();
                OptionsReport {
                    server,
                    ok: offered,
                    diagnosis,
                    hint,
                    options: Some(OptionsSummary::from(&o)),
                    connect: timing.connect,
                    rtt: Some(timing.rtt),
                    total: start.elapsed(),
                    tls_version,
                    tls_cipher,
                    error: None,
                }
            }
            Err(e) => {
                let (mut diagnosis, hint) = diagnose(&e);
                if let Diagnosis::MethodNotOffered { method: m } = &mut diagnosis {
                    *m = Method::Options.as_str().into();
                }
                OptionsReport {
                    server,
                    ok: false,
                    diagnosis,
                    hint,
                    options: None,
                    connect: None,
                    rtt: None,
                    total: start.elapsed(),
                    tls_version: None,
                    tls_cipher: None,
                    error: Some(e),
                }
            }
        }
    }
}
