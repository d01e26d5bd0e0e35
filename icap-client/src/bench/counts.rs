//! What a run counts: verdicts, errors by kind, the detection check. Every field adds up
//! across workers, runs and machines.

use icap_client::{Error, Verdict};
use serde::{Deserialize, Serialize};

/// Counts of one run (or of several, merged). Every field adds up across workers, runs and
/// machines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Counts {
    /// Scans started in the measured window.
    pub sent: u64,
    /// Body bytes of the completed scans.
    pub bytes: u64,
    pub clean: u64,
    pub infected: u64,
    pub modified: u64,
    pub not_scanned: u64,
    /// Connection refused or unreachable.
    pub refused: u64,
    pub timeout: u64,
    pub protocol: u64,
    /// 5xx statuses other than 503.
    pub status_5xx: u64,
    /// 503 (the server is overloaded).
    pub overloaded: u64,
    /// Closed or reset by the server.
    pub closed: u64,
    /// Any other error (TLS, a 4xx status, every server down, ...).
    pub other: u64,
    /// EICAR bodies sent (warm-up included: a miss is a miss).
    pub eicar_sent: u64,
    /// EICAR bodies reported infected.
    pub eicar_detected: u64,
    /// EICAR bodies answered with anything but infected (errors not included).
    pub eicar_missed: u64,
    /// Harmless bodies reported infected.
    pub clean_flagged: u64,
    /// Scans completed after the measured window ended, within the grace period (in the
    /// counts above and in the latencies, not in the rates).
    pub late: u64,
    /// Body bytes of the late scans.
    pub late_bytes: u64,
}

/// Which error counter an error goes to.
pub(crate) fn error_kind(e: &Error) -> &'static str {
    match e.status() {
        Some(503) => return "overloaded",
        Some(s) if (500..600).contains(&s) => return "5xx",
        _ => {}
    }
    if e.is_connect() {
        "refused"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_protocol() {
        "protocol"
    } else if e.is_closed() {
        "closed"
    } else {
        "other"
    }
}

impl Counts {
    /// Counts one completed scan of `size` bytes.
    pub(crate) fn verdict(&mut self, v: &Verdict, size: u64, eicar: bool) {
        self.bytes = self.bytes.saturating_add(size);
        let slot = match v {
            Verdict::Clean => &mut self.clean,
            Verdict::Infected { .. } => &mut self.infected,
            Verdict::Modified { .. } => &mut self.modified,
            Verdict::NotScanned { .. } => &mut self.not_scanned,
            Verdict::Failed { error } => match error_kind(error) {
                "overloaded" => &mut self.overloaded,
                "5xx" => &mut self.status_5xx,
                "refused" => &mut self.refused,
                "timeout" => &mut self.timeout,
                "protocol" => &mut self.protocol,
                "closed" => &mut self.closed,
                _ => &mut self.other,
            },
        };
        *slot = slot.saturating_add(1);
        self.check(v, eicar);
    }

    /// The detection check alone (warm-up scans are checked but not counted).
    pub(crate) fn check(&mut self, v: &Verdict, eicar: bool) {
        let slot = match (eicar, v) {
            (true, Verdict::Infected { .. }) => &mut self.eicar_detected,
            (true, Verdict::Failed { .. }) | (false, _) if !v.is_infected() => {
                if eicar {
                    self.eicar_sent = self.eicar_sent.saturating_add(1);
                }
                return;
            }
            (true, _) => &mut self.eicar_missed,
            (false, _) => &mut self.clean_flagged,
        };
        *slot = slot.saturating_add(1);
        if eicar {
            self.eicar_sent = self.eicar_sent.saturating_add(1);
        }
    }

    /// Verdicts (answers) in all.
    pub(crate) fn verdicts(&self) -> u64 {
        [self.clean, self.infected, self.modified, self.not_scanned]
            .iter()
            .fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// Errors in all.
    pub(crate) fn errors(&self) -> u64 {
        [
            self.refused,
            self.timeout,
            self.protocol,
            self.status_5xx,
            self.overloaded,
            self.closed,
            self.other,
        ]
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// Adds `o` to these counts.
    pub(crate) fn add(&mut self, o: &Counts) {
        for (a, b) in [
            (&mut self.sent, o.sent),
            (&mut self.bytes, o.bytes),
            (&mut self.clean, o.clean),
            (&mut self.infected, o.infected),
            (&mut self.modified, o.modified),
            (&mut self.not_scanned, o.not_scanned),
            (&mut self.refused, o.refused),
            (&mut self.timeout, o.timeout),
            (&mut self.protocol, o.protocol),
            (&mut self.status_5xx, o.status_5xx),
            (&mut self.overloaded, o.overloaded),
            (&mut self.closed, o.closed),
            (&mut self.other, o.other),
            (&mut self.eicar_sent, o.eicar_sent),
            (&mut self.eicar_detected, o.eicar_detected),
            (&mut self.eicar_missed, o.eicar_missed),
            (&mut self.clean_flagged, o.clean_flagged),
            (&mut self.late, o.late),
            (&mut self.late_bytes, o.late_bytes),
        ] {
            *a = a.saturating_add(b);
        }
    }
}
