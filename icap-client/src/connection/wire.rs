//! The bytes on their way out: a queue of pieces written with vectored I/O, and the
//! payload log at target `icap_client::wire`.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};

/// Target of the network payload log.
const WIRE_TARGET: &str = "icap_client::wire";

/// Outgoing bytes as a queue of pieces, written with vectored I/O, so a body chunk goes
/// out without being copied next to its size line.
#[derive(Default)]
pub(super) struct OutQueue {
    parts: VecDeque<Bytes>,
    len: usize,
}

impl OutQueue {
    /// Drops every queued piece.
    pub(super) fn clear(&mut self) {
        self.parts.clear();
        self.len = 0;
    }

    /// Queues `b` (an empty piece is dropped).
    pub(super) fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.parts.push_back(b);
        }
    }
}

impl Buf for OutQueue {
    fn remaining(&self) -> usize {
        self.len
    }
    fn chunk(&self) -> &[u8] {
        self.parts.front().map_or(&[], |b| &b[..])
    }
    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, part) in dst.iter_mut().zip(&self.parts) {
            *slot = IoSlice::new(part);
            n += 1;
        }
        n
    }
    fn advance(&mut self, mut cnt: usize) {
        self.len -= cnt;
        while cnt > 0 {
            let front = self.parts.front_mut().expect("advance within remaining");
            if cnt >= front.len() {
                cnt -= front.len();
                self.parts.pop_front();
            } else {
                front.advance(cnt);
                cnt = 0;
            }
        }
    }
}

/// Logs `bytes` (at most `max` of them) when the payload log is on (`cap` is `Some`).
pub(super) fn wire_log(cap: Option<usize>, conn: u64, dir: &str, bytes: &[u8], max: usize) {
    if cap.is_none() || bytes.is_empty() {
        return;
    }
    let shown = bytes.len().min(max);
    if shown == 0 && max == 0 {
        tracing::debug!(target: WIRE_TARGET, conn, dir, len = bytes.len(), "(body bytes beyond the log cap)");
        return;
    }
    tracing::debug!(
        target: WIRE_TARGET,
        conn,
        dir,
        len = bytes.len(),
        "{}{}",
        bytes[..shown].escape_ascii(),
        if shown < bytes.len() { " [...]" } else { "" }
    );
}
