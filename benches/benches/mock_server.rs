//! Throughput of icap-mock-server: requests per second with keep-alive on 1 and on many
//! connections, and MB/s for large bodies (scan only, and the streamed `200` echo).
//!
//! The client side is icap-proto's encoders and decoder over raw TCP, so the numbers are
//! the server's (plus one codec pass on each side).
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use icap_mock_server::MockServer;
use icap_proto::{
    BodyKind, Event, HttpResponseHead, Limits, Method, RequestHead, ResponseDecoder, chunked,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

/// One encoded RESPMOD request carrying `body` in chunks of at most 64 KiB.
fn request(url: &str, body: &[u8], allow_204: bool) -> Bytes {
    let mut head = RequestHead::new(Method::Respmod, url.parse().expect("valid URL"));
    head.headers.append("Host", "127.0.0.1").expect("valid");
    if allow_204 {
        head.headers.append("Allow", "204").expect("valid");
    }
    let mut res = HttpResponseHead::new(200, "OK").expect("valid");
    res.headers
        .append("Content-Type", "application/octet-stream")
        .expect("valid");
    head.http_response = Some(res);
    head.body = Some(BodyKind::Response);
    let mut out = BytesMut::with_capacity(body.len() + 1024);
    head.encode(&mut out).expect("encodes");
    for piece in body.chunks(64 * 1024) {
        chunked::encode_chunk(piece, &mut out);
    }
    chunked::encode_last_chunk(false, &icap_proto::Headers::new(), &mut out);
    out.freeze()
}

/// A keep-alive client connection.
struct Client {
    stream: TcpStream,
    buf: BytesMut,
    dec: ResponseDecoder,
}

impl Client {
    async fn connect(server: &MockServer) -> Client {
        let stream = TcpStream::connect(server.addr()).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            buf: BytesMut::with_capacity(256 * 1024),
            dec: ResponseDecoder::new(Method::Respmod, Limits::default()),
        }
    }

    /// Sends `req` while reading the answer (a streamed echo needs both at once); returns
    /// the status and the body bytes received.
    async fn exchange(&mut self, req: &Bytes) -> (u16, u64) {
        let (mut rd, mut wr) = self.stream.split();
        let write = async {
            wr.write_all(req).await.expect("write");
        };
        let read = async {
            let mut status = 0;
            let mut got = 0u64;
            loop {
                while let Some(ev) = self.dec.decode(&mut self.buf).expect("valid answer") {
                    match ev {
                        Event::Head(h) => status = h.status.as_u16(),
                        Event::Data(d) => got += d.len() as u64,
                        Event::PreviewEnd { .. } => {}
                        Event::End(_) => return (status, got),
                    }
                }
                if self.buf.capacity() - self.buf.len() < 32 * 1024 {
                    self.buf.reserve(256 * 1024);
                }
                let n = rd.read_buf(&mut self.buf).await.expect("read");
                assert!(n > 0, "server closed the connection");
            }
        };
        let ((), answer) = tokio::join!(write, read);
        answer
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn requests_per_second(c: &mut Criterion) {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    let clean = request(&server.url(), &[b'x'; 1024], true);
    let eicar = request(&server.url(), icap_mock_server::EICAR, true);

    let mut g = c.benchmark_group("mock_server/requests");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    for (name, req, want) in [("clean_1k_204", &clean, 204), ("eicar_200", &eicar, 200)] {
        let mut client = rt.block_on(Client::connect(&server));
        g.bench_function(BenchmarkId::new("keepalive_1_conn", name), |b| {
            b.iter(|| {
                let (status, _) = rt.block_on(client.exchange(req));
                assert_eq!(status, want);
            });
        });
    }
    for conns in [16u64, 64] {
        let clients: Vec<Client> =
            rt.block_on(async { futures_join(&server, conns as usize).await });
        let clients = std::sync::Arc::new(tokio::sync::Mutex::new(clients));
        g.bench_function(
            BenchmarkId::new("keepalive_n_conns", format!("{conns}_clean_1k_204")),
            |b| {
                b.iter_custom(|iters| {
                    let clients = clients.clone();
                    let clean = clean.clone();
                    rt.block_on(async move {
                        let mut all = clients.lock().await;
                        let per = iters.div_ceil(conns).max(1);
                        let start = Instant::now();
                        let mut set = tokio::task::JoinSet::new();
                        for mut client in all.drain(..) {
                            let req = clean.clone();
                            set.spawn(async move {
                                for _ in 0..per {
                                    let (status, _) = client.exchange(&req).await;
                                    assert_eq!(status, 204);
                                }
                                client
                            });
                        }
                        while let Some(c) = set.join_next().await {
                            all.push(c.expect("client task"));
                        }
                        // Normalise to the iterations asked for.
                        let done = u128::from(per * conns);
                        Duration::from_nanos(
                            (start.elapsed().as_nanos() * u128::from(iters) / done) as u64,
                        )
                    })
                });
            },
        );
    }
    g.finish();
    drop(server);
}

async fn futures_join(server: &MockServer, n: usize) -> Vec<Client> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Client::connect(server).await);
    }
    out
}

fn large_bodies(c: &mut Criterion) {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    let mut g = c.benchmark_group("mock_server/large_body");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    for mib in [1usize, 16] {
        let body: Vec<u8> = (0..mib * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        g.throughput(Throughput::Bytes(body.len() as u64));
        for (name, allow_204, want) in [("scan_204", true, 204), ("echo_200", false, 200)] {
            let req = request(&server.url(), &body, allow_204);
            let mut client = rt.block_on(Client::connect(&server));
            g.bench_function(BenchmarkId::new(name, format!("{mib}MiB")), |b| {
                b.iter(|| {
                    let (status, got) = rt.block_on(client.exchange(&req));
                    assert_eq!(status, want);
                    if !allow_204 {
                        assert_eq!(got, body.len() as u64);
                    }
                });
            });
        }
    }
    g.finish();
    drop(server);
}

criterion_group!(benches, requests_per_second, large_bodies);
criterion_main!(benches);
