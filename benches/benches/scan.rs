//! Scan throughput against the mock server on loopback, compared in the same run with
//! (a) a raw TCP baseline that sends the same request bytes (in 1 MiB writes) and reads a
//! reply of the same size with no ICAP logic, and (b) `icap-rs`, the other Rust ICAP
//! client. The 64 MiB group also scans the same bytes from a file and through a reader.
//! The 1 KiB groups also scan a canned server with both clients (`icap_client_canned`,
//! `icap_rs_canned`): a raw TCP loop that answers each request with the mock's bytes, so
//! the server's ICAP work is out of those rows and they compare each client alone with
//! `raw_tcp`.
//!
//! The server side (mock or raw) runs on its own one-worker runtime on another thread, the
//! clients on a one-worker runtime, so each side gets one of the machine's two cores. Every
//! row times its rounds inside one task on the client's worker (`support::on_worker`): the
//! bench's main thread waits once per sample instead of once per scan.
//!
//! icap-rs sends the same ICAP and embedded response fields as icap-client
//! (`support::icap_rs_request`) but no `req-hdr`: icap-rs 0.3 does not put a RESPMOD's
//! request context on the wire, so the mock parses one embedded head less for it.
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use icap_benches::support::{bench_mock, body, icap_rs_request, on_worker, runtime, scan_round};
use icap_client::{Client, PreviewMode, ScanMeta, Verdict};
use icap_proto::{
    BodyKind, Event, HttpRequestHead, HttpResponseHead, Limits, Method, RequestHead,
    ResponseDecoder, chunked,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SMALL: usize = 1024;
const LARGE: usize = 64 * 1024 * 1024;
const CONCURRENCY: usize = 16;

/// The request a scanning client sends for `body`: a RESPMOD with embedded heads, the first
/// `preview` bytes as a preview, then the rest, in 64 KiB chunks.
fn request_bytes(url: &str, body: &Bytes, preview: usize) -> (Bytes, Bytes) {
    let mut head = RequestHead::new(Method::Respmod, url.parse().expect("mock URL"));
    head.headers.append("Host", "127.0.0.1").expect("valid");
    head.headers.append("Allow", "204").expect("valid");
    head.headers
        .append("Preview", preview.to_string().as_str())
        .expect("valid");
    let mut req = HttpRequestHead::new("GET", "/file.bin").expect("valid");
    req.headers.append("Host", "upload.local").expect("valid");
    head.http_request = Some(req);
    let mut res = HttpResponseHead::new(200, "OK").expect("valid");
    res.headers
        .append("Content-Length", body.len().to_string().as_str())
        .expect("valid");
    head.http_response = Some(res);
    head.body = Some(BodyKind::Response);
    let mut first = BytesMut::new();
    head.encode(&mut first).expect("encodable");
    let rest = chunked::encode_preview(body, preview, &mut first);
    let mut second = BytesMut::new();
    if !rest.is_empty() {
        for piece in rest.chunks(64 * 1024) {
            chunked::encode_chunk(piece, &mut second);
        }
        chunked::encode_last_chunk(false, &icap_proto::Headers::new(), &mut second);
    }
    (first.freeze(), second.freeze())
}

/// Sends a request to the mock over raw TCP and returns the length of its `100 Continue`
/// (0 without one) and its final reply: the raw baseline's replies are sized from them, and
/// the canned server answers with the final reply.
async fn mock_reply(addr: SocketAddr, first: &Bytes, second: &Bytes) -> (usize, Bytes) {
    let mut s = TcpStream::connect(addr).await.expect("mock accepts");
    s.write_all(first).await.expect("write");
    let mut dec = ResponseDecoder::new(Method::Respmod, Limits::default());
    let mut buf = BytesMut::with_capacity(4096);
    let mut all = BytesMut::new();
    let mut continue_len = 0;
    let mut consumed = 0;
    loop {
        let before = buf.len();
        match dec.decode(&mut buf).expect("mock reply decodes") {
            Some(Event::Head(h)) if h.status.as_u16() == 100 => {
                continue_len = consumed + before - buf.len();
            }
            Some(Event::End(_))
                if continue_len > 0 && consumed + before - buf.len() == continue_len =>
            {
                s.write_all(second).await.expect("write rest");
            }
            Some(Event::End(_)) => {
                let end = consumed + before - buf.len();
                return (
                    continue_len,
                    all.split_to(end).split_off(continue_len).freeze(),
                );
            }
            Some(_) => {}
            None => {
                let at = buf.len();
                let n = s.read_buf(&mut buf).await.expect("read");
                assert!(n > 0, "mock closed early");
                all.extend_from_slice(&buf[at..]);
                continue;
            }
        }
        consumed += before - buf.len();
    }
}

/// A listener on a free port that serves each connection (with `TCP_NODELAY`) with `conn`,
/// in a task of its own.
async fn serve_each<F, Fut>(conn: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            s.set_nodelay(true).ok();
            tokio::spawn(conn(s));
        }
    });
    addr
}

/// Raw baseline server: per connection, forever: read `req_len` bytes, write `reply`.
async fn raw_server(req_len: usize, reply: Bytes) -> SocketAddr {
    serve_each(move |mut s| {
        let reply = reply.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let mut left = req_len;
                while left > 0 {
                    let want = left.min(buf.len());
                    match s.read(&mut buf[..want]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => left -= n,
                    }
                }
                if s.write_all(&reply).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

/// A canned ICAP server for the `_canned` rows: per connection, the first request is
/// decoded whole (icap-proto's decoder) and kept; every later one is read as that many raw
/// bytes, as the raw baseline reads, and must be the same bytes (else the connection is
/// closed and the scan fails). Each request is answered with `reply`. A client's requests
/// on one connection are the same bytes every time.
async fn canned_server(reply: Bytes) -> SocketAddr {
    serve_each(move |mut s| {
        let reply = reply.clone();
        async move {
            let mut dec = icap_proto::RequestDecoder::new(Limits::default());
            let mut buf = BytesMut::with_capacity(16 * 1024);
            let mut first = Vec::new();
            loop {
                let Ok(event) = dec.decode(&mut buf) else {
                    return;
                };
                match event {
                    Some(Event::End(_)) => break,
                    Some(_) => {}
                    None => match s.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => first.extend_from_slice(&buf[buf.len() - n..]),
                    },
                }
            }
            // All that was read is the first request: nothing may follow it unanswered.
            if !buf.is_empty() || s.write_all(&reply).await.is_err() {
                return;
            }
            let mut next = vec![0u8; first.len()];
            while s.read_exact(&mut next).await.is_ok()
                && next == first
                && s.write_all(&reply).await.is_ok()
            {}
        }
    })
    .await
}

struct RawConn {
    s: TcpStream,
    reply: Vec<u8>,
}

impl RawConn {
    async fn new(addr: SocketAddr, reply_len: usize) -> Self {
        let s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).ok();
        RawConn {
            s,
            reply: vec![0; reply_len],
        }
    }
    async fn exchange(&mut self, req: &[Bytes]) {
        // In pieces of the size the client gathers per write: one write of all 64 MiB is
        // slower on loopback (BENCHMARKS.md, "64 MiB").
        let piece_len = match env_bytes("ICAP_BENCH_RAW_WRITE", icap_client::DEFAULT_WRITE_BATCH) {
            0 => usize::MAX,
            n => n,
        };
        for part in req {
            for piece in part.chunks(piece_len) {
                self.s.write_all(piece).await.expect("write");
            }
        }
        self.s.read_exact(&mut self.reply).await.expect("read");
    }
}

/// One round of icap-rs scans: one per client, each a spawned task, joined in order.
async fn icap_rs_round(clients: Vec<icap_rs::Client>, req: Arc<icap_rs::Request>) {
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|c| {
            let req = req.clone();
            tokio::spawn(async move { c.send(&req).await.expect("icap-rs scan") })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("icap-rs task").status_code().as_u16(), 204);
    }
}

fn icap_rs_client(addr: SocketAddr) -> icap_rs::Client {
    icap_rs::Client::builder()
        .host(&addr.ip().to_string())
        .port(addr.port())
        .keep_alive(true)
        .build()
}

/// A size from the environment, for sweeps (BENCHMARKS.md, "64 MiB"):
/// `ICAP_BENCH_WRITE_BATCH` is the client's `write_batch`, `ICAP_BENCH_RAW_WRITE` the raw
/// baseline's write size (`0`: the whole request in one `write_all`).
fn env_bytes(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
    })
}

fn ours(url: &str, conns: u32) -> Client {
    Client::builder()
        .server(url)
        .max_connections(conns)
        .max_size(None)
        .write_batch(env_bytes(
            "ICAP_BENCH_WRITE_BATCH",
            icap_client::DEFAULT_WRITE_BATCH,
        ))
        .body_digest(false)
        .build()
        .expect("client")
}

/// [`ours`] set up for a canned server at `addr`, which answers scans only: no `OPTIONS`
/// (the mock announces `Preview: 1024`, so the preview is fixed at that), so that every
/// request is the same bytes as the scans of the mock rows.
fn canned_client(addr: SocketAddr, conns: u32) -> Client {
    Client::builder()
        .server(&format!("icap://{addr}/avscan"))
        .use_options(false)
        .preview(PreviewMode::Fixed(1024))
        .max_connections(conns)
        .max_size(None)
        .body_digest(false)
        .build()
        .expect("client")
}

fn assert_clean(v: &Verdict) {
    assert!(matches!(v, Verdict::Clean), "expected clean, got {v:?}");
}

#[allow(clippy::too_many_lines)] // one criterion group per scan shape, kept together so their setups read side by side
fn bench_scan(c: &mut Criterion) {
    let server_rt = runtime("server");
    let client_rt = runtime("client");
    // The journal and its SHA-256 of every body are the mock's own costs, not the
    // client's: off.
    let mock = server_rt.block_on(bench_mock().start());
    let url = mock.url();
    let addr = mock.addr();
    let meta = ScanMeta::new("file.bin");

    for (label, size, conns) in [
        ("1KiB", SMALL, 1usize),
        ("1KiB", SMALL, CONCURRENCY),
        ("64MiB", LARGE, 1),
    ] {
        let data = body(size);
        let (first, second) = request_bytes(&url, &data, 1024);
        let (cont_len, reply) = client_rt.block_on(mock_reply(addr, &first, &second));
        // The raw baseline replies once per request, with as many bytes as the mock's
        // replies (100 Continue included) and no ICAP logic.
        let raw_reply = cont_len + reply.len();
        let raw_addr = server_rt.block_on(raw_server(
            first.len() + second.len(),
            Bytes::from(vec![b'x'; raw_reply]),
        ));

        let mut group = c.benchmark_group(format!("scan_{label}_x{conns}"));
        if size == LARGE {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(10));
            group.throughput(Throughput::Bytes(size as u64));
        } else {
            group.throughput(Throughput::Elements(conns as u64));
        }

        // Raw TCP baseline.
        let raw_conns: Vec<_> = (0..conns)
            .map(|_| {
                Arc::new(tokio::sync::Mutex::new(
                    client_rt.block_on(RawConn::new(raw_addr, raw_reply)),
                ))
            })
            .collect();
        let parts = [first.clone(), second.clone()];
        group.bench_function(BenchmarkId::new("raw_tcp", conns), |b| {
            b.iter_custom(|iters| {
                let (raw_conns, parts) = (raw_conns.clone(), parts.clone());
                on_worker(&client_rt, iters, move || {
                    let raw_conns = raw_conns.clone();
                    let parts = parts.clone();
                    async move {
                        let tasks: Vec<_> = raw_conns
                            .into_iter()
                            .map(|c| {
                                let parts = parts.clone();
                                tokio::spawn(async move { c.lock().await.exchange(&parts).await })
                            })
                            .collect();
                        for t in tasks {
                            t.await.expect("raw task");
                        }
                    }
                })
            });
        });

        // icap-client (this workspace).
        let client = ours(&url, conns as u32);
        client_rt.block_on(async {
            assert_clean(&client.scan_bytes(data.clone(), &meta).await.verdict);
        });
        group.bench_function(BenchmarkId::new("icap_client", conns), |b| {
            b.iter_custom(|iters| {
                let (client, data, meta) = (client.clone(), data.clone(), meta.clone());
                on_worker(&client_rt, iters, move || {
                    let (client, data, meta) = (client.clone(), data.clone(), meta.clone());
                    async move { scan_round(&client, &data, &meta, conns).await }
                })
            });
        });

        // icap-client scanning the same bytes from a file (64 MiB only): the file path
        // reads through tokio's blocking pool, where memory is sliced.
        if size == LARGE {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("file.bin");
            std::fs::write(&path, &data).expect("write the file");
            client_rt.block_on(async {
                assert_clean(&client.scan_file(&path, &meta).await.verdict);
            });
            group.bench_function(BenchmarkId::new("icap_client_file", conns), |b| {
                b.iter_custom(|iters| {
                    let (client, path, meta) = (client.clone(), path.clone(), meta.clone());
                    on_worker(&client_rt, iters, move || {
                        let (client, path, meta) = (client.clone(), path.clone(), meta.clone());
                        async move {
                            let t =
                                tokio::spawn(async move { client.scan_file(&path, &meta).await });
                            assert_clean(&t.await.expect("scan task").verdict);
                        }
                    })
                });
            });
        }

        // icap-client scanning the same bytes through a reader (64 MiB only): read into
        // its own buffers, and gathered for a write while the reader has bytes ready.
        if size == LARGE {
            group.bench_function(BenchmarkId::new("icap_client_reader", conns), |b| {
                b.iter_custom(|iters| {
                    let (client, data, meta) = (client.clone(), data.clone(), meta.clone());
                    on_worker(&client_rt, iters, move || {
                        let (client, data, meta) = (client.clone(), data.clone(), meta.clone());
                        async move {
                            let t = tokio::spawn(async move {
                                let n = data.len() as u64;
                                client
                                    .scan_reader(std::io::Cursor::new(data), Some(n), &meta)
                                    .await
                            });
                            assert_clean(&t.await.expect("scan task").verdict);
                        }
                    })
                });
            });
        }

        // icap-rs: one client per connection (it keeps one idle connection per client).
        let rs_clients: Vec<_> = (0..conns).map(|_| icap_rs_client(addr)).collect();
        let rs_req = Arc::new(icap_rs_request("avscan", &data));
        client_rt.block_on(async {
            let r = rs_clients[0].send(&rs_req).await.expect("icap-rs scan");
            assert_eq!(r.status_code().as_u16(), 204, "icap-rs clean scan");
        });
        group.bench_function(BenchmarkId::new("icap_rs", conns), |b| {
            b.iter_custom(|iters| {
                let (rs_clients, rs_req) = (rs_clients.clone(), rs_req.clone());
                on_worker(&client_rt, iters, move || {
                    let (rs_clients, rs_req) = (rs_clients.clone(), rs_req.clone());
                    async move { icap_rs_round(rs_clients, rs_req).await }
                })
            });
        });
        // Both clients again, each against a canned server instead of the mock (small
        // bodies only): a raw TCP loop that reads one request of that client's length and
        // writes the mock's answer, with no parsing or rules. These rows take the server's
        // ICAP work out, so next to `raw_tcp` they show what each client itself costs.
        if size == SMALL {
            assert_eq!(cont_len, 0, "a 1 KiB body goes whole in the preview");
            let canned = server_rt.block_on(canned_server(reply.clone()));
            let client = canned_client(canned, conns as u32);
            group.bench_function(BenchmarkId::new("icap_client_canned", conns), |b| {
                b.iter_custom(|iters| {
                    let (client, data, meta) = (client.clone(), data.clone(), meta.clone());
                    on_worker(&client_rt, iters, move || {
                        let (client, data, meta) = (client.clone(), data.clone(), meta.clone());
                        async move { scan_round(&client, &data, &meta, conns).await }
                    })
                });
            });

            let rs_clients: Vec<_> = (0..conns).map(|_| icap_rs_client(canned)).collect();
            group.bench_function(BenchmarkId::new("icap_rs_canned", conns), |b| {
                b.iter_custom(|iters| {
                    let (rs_clients, rs_req) = (rs_clients.clone(), rs_req.clone());
                    on_worker(&client_rt, iters, move || {
                        let (rs_clients, rs_req) = (rs_clients.clone(), rs_req.clone());
                        async move { icap_rs_round(rs_clients, rs_req).await }
                    })
                });
            });
        }
        group.finish();
    }
    drop(mock);
}

criterion_group!(benches, bench_scan);
criterion_main!(benches);
