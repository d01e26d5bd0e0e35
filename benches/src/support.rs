//! What the scan and proxy benches share: their runtimes and their bodies.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use icap_client::{Client, ScanMeta, Verdict};
use icap_mock_server::{MockServer, MockServerBuilder};
use tokio::runtime::Runtime;

/// A one-worker multi-thread runtime named `name`: the server side and the client side
/// each get one, so each has one of the machine's two cores.
///
/// # Panics
/// If the runtime cannot be built.
pub fn runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The mock the scan and proxy benches (and the `scan_count` example) scan, set up as for a
/// load test: no SHA-256 of each body and no journal (`journal_limit(0)`), which are the
/// mock's own costs, not the client's. `ICAP_BENCH_JOURNAL=1` keeps the journal (the
/// setup of the runs before issue 12's stop 24).
#[must_use]
pub fn bench_mock() -> MockServerBuilder {
    let b = MockServer::builder().body_digest(false);
    if std::env::var("ICAP_BENCH_JOURNAL").is_ok_and(|v| v == "1") {
        b
    } else {
        b.journal_limit(0)
    }
}

/// One round of `conns` scans of `data`, each a task spawned on the current runtime (as an
/// upload product scans each upload), joined in order.
///
/// # Panics
/// If a task panics or a verdict is not `Clean`.
pub async fn scan_round(client: &Client, data: &Bytes, meta: &ScanMeta, conns: usize) {
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let (client, data, meta) = (client.clone(), data.clone(), meta.clone());
            tokio::spawn(async move { client.scan_bytes(data, &meta).await })
        })
        .collect();
    for t in tasks {
        let v = t.await.expect("scan task").verdict;
        assert!(matches!(v, Verdict::Clean), "expected clean, got {v:?}");
    }
}

/// `len` bytes of clean content (it never contains the EICAR string).
pub fn body(len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| b"abcdefghijklmnop"[i % 16])
            .collect::<Vec<u8>>(),
    )
}

/// The request icap-rs sends in the scan benches for `body`, carrying what an
/// icap-client scan of `file.bin` carries: a `User-Agent`, the preview, and both embedded
/// HTTP heads (`GET /file.bin` with its `Host`, then `200 OK` with `Content-Type` and
/// `Content-Length`). So the server parses the same fields from both clients, and the
/// rows compare the clients on the same work (icap-rs sends no `req-hdr` by default).
///
/// # Panics
/// If icap-rs refuses the request (it does not for these values).
pub fn icap_rs_request(service: &str, body: &Bytes) -> icap_rs::Request {
    let req = http::Request::builder()
        .method("GET")
        .uri("/file.bin")
        .header("Host", "upload.local")
        .body(())
        .expect("valid");
    let res = http::Response::builder()
        .status(200)
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", body.len().to_string())
        .body(body.to_vec())
        .expect("valid");
    icap_rs::Request::respmod(service)
        .icap_header("User-Agent", "icap-rs/0.3.0")
        .allow_204()
        .preview(1024)
        .with_http_response_and_request_context(res, req)
        .expect("icap-rs request")
}

/// Runs `round` `iters` times, one after the other, inside one task on `rt`'s worker, and
/// returns the time they took: the timing routine of the scan benches
/// (`Bencher::iter_custom`).
///
/// Criterion's `to_async(..).iter(..)` polls each round in `block_on` on the bench's main
/// thread: every round's tasks are then spawned from outside the runtime (each spawn wakes
/// the worker through the inject queue), and every finished task wakes the main thread
/// again, a third busy thread on a two-core machine and a cross-thread wake per scan. Here
/// the main thread waits once per sample; a round's tasks are spawned from the worker
/// (its local queue) and joined there.
///
/// # Panics
/// If a round panics (a failed scan's assertion).
pub fn on_worker<F, Fut>(rt: &Runtime, iters: u64, round: F) -> Duration
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    rt.block_on(rt.spawn(async move {
        let start = Instant::now();
        for _ in 0..iters {
            round().await;
        }
        start.elapsed()
    }))
    .expect("a bench round panicked")
}
