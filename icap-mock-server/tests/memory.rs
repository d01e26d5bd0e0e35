//! Memory held by the mock across many connections.
//!
//! This is its own test binary, not a module of `tests/it`: it reads the resident memory of
//! the whole test process, and the other integration tests, run in parallel threads of the
//! same process, would make that number meaningless.

use std::time::{Duration, Instant};

use icap_mock_server::MockServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: u64 = 1024 * 1024;

/// A `/proc/self/status` field in KiB, as bytes.
fn proc_status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or_else(|| panic!("{field} in /proc/self/status"), |kib| kib * 1024)
}

/// A RESPMOD with a realistic head (a few ICAP and HTTP headers) and a 12 KiB body sent in
/// the same write, so the mock reads head and body into one buffer: a journal entry that
/// kept a slice of that buffer would keep all its touched pages resident.
fn small_respmod(i: usize) -> Vec<u8> {
    let req_hdr = format!(
        "GET /downloads/file-{i}.bin HTTP/1.1\r\nHost: files.example\r\nUser-Agent: memory-test/1.0\r\nAccept: */*\r\n\r\n"
    );
    let res_hdr = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 12288\r\nServer: origin\r\n\r\n";
    let mut out = format!(
        "RESPMOD icap://127.0.0.1/avscan ICAP/1.0\r\nHost: 127.0.0.1\r\nAllow: 204\r\nX-Client-IP: 10.0.0.{}\r\nEncapsulated: req-hdr=0, res-hdr={}, res-body={}\r\n\r\n",
        i % 250,
        req_hdr.len(),
        req_hdr.len() + res_hdr.len()
    )
    .into_bytes();
    out.extend_from_slice(req_hdr.as_bytes());
    out.extend_from_slice(res_hdr.as_bytes());
    out.extend_from_slice(b"3000\r\n");
    out.extend(std::iter::repeat_n(b'x', 0x3000));
    out.extend_from_slice(b"\r\n0\r\n\r\n");
    out
}

const OPTIONS: &[u8] = b"OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\nHost: 127.0.0.1\r\n\r\n";

/// One connection: one request, read the answer's head, close.
async fn one_exchange(addr: std::net::SocketAddr, i: usize) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = if i.is_multiple_of(2) {
        OPTIONS.to_vec()
    } else {
        small_respmod(i)
    };
    s.write_all(&req).await.expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while memchr::memmem::find(&got, b"\r\n\r\n").is_none() {
        let n = s.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed before an answer");
        got.extend_from_slice(&buf[..n]);
    }
    let want: &[u8] = if i.is_multiple_of(2) {
        b"ICAP/1.0 200 "
    } else {
        b"ICAP/1.0 204 "
    };
    assert!(got.starts_with(want), "{}", String::from_utf8_lossy(&got));
}

/// 1 000 connections (alternately one `OPTIONS` and one small `RESPMOD`) against one mock
/// whose journal budget is 1 MiB.
///
/// The bound: the journal may hold up to its byte budget (1 MiB) of accounted data; its
/// real heap use is that plus allocator overhead (the accounting counts every allocation the
/// entry owns, but malloc rounds up), and the runtime, the listener and the allocator's
/// arenas may grow a little while 1 000 sockets come and go. 6 MiB leaves room for all of
/// that and still fails by far if each connection leaves its ~18 KiB read buffer pinned
/// (18 MiB) or if the journal grows without a byte bound.
#[tokio::test]
async fn a_thousand_connections_stay_within_the_memory_bound() {
    let budget = MIB as usize;
    let server = MockServer::builder()
        .journal_bytes(budget)
        .idle_timeout(Duration::from_secs(30))
        .start()
        .await;
    let addr = server.addr();
    // Warm up: runtime, allocator arenas, the first journal entries.
    for i in 0..100 {
        one_exchange(addr, i).await;
    }
    let before = proc_status_bytes("VmRSS:");
    let started = Instant::now();
    for i in 100..1100 {
        one_exchange(addr, i).await;
    }
    // Let the last connections finish recording.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = proc_status_bytes("VmRSS:");
    let peak = proc_status_bytes("VmHWM:");
    let growth = after.saturating_sub(before);
    let journal = server.journal().await;
    let held = server.journal_bytes();
    eprintln!(
        "1000 connections in {:?}: VmRSS {} KiB -> {} KiB (growth {} KiB), VmHWM {} KiB, journal {} entries, {} bytes",
        started.elapsed(),
        before / 1024,
        after / 1024,
        growth / 1024,
        peak / 1024,
        journal.len(),
        held
    );
    assert!(
        held <= budget,
        "journal holds {held} bytes, budget {budget}"
    );
    assert!(!journal.is_empty());
    assert!(
        journal.len() < 1100,
        "the byte budget must have dropped old entries"
    );
    assert!(
        growth < 6 * MIB,
        "resident memory grew by {} KiB over 1 000 connections",
        growth / 1024
    );
}
