//! The proxy's overhead (issue 11): icap-client scans straight to a mock (the "upstream")
//! against the same scans through a second mock started with `upstream(..)` in front of it,
//! in the same run. The servers share one one-worker runtime on their own thread, the client
//! another, as in `scan.rs`, and the rounds are timed inside one task on the client's worker
//! (`support::on_worker`).
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use icap_benches::support::{bench_mock, body, on_worker, runtime, scan_round};
use icap_client::{Client, ScanMeta, Verdict};
use icap_mock_server::proxy::Upstream;

fn client(url: &str, conns: u32) -> Client {
    Client::builder()
        .server(url)
        .max_connections(conns)
        .max_size(None)
        .body_digest(false)
        .build()
        .expect("client")
}

fn bench_proxy(c: &mut Criterion) {
    let server_rt = runtime("servers");
    let client_rt = runtime("client");
    let upstream = server_rt.block_on(bench_mock().start());
    let up = Upstream::parse(&upstream.url()).expect("upstream URL");
    let proxy = server_rt.block_on(bench_mock().upstream(up.clone()).start());
    let meta = ScanMeta::new("file.bin");
    for (label, size, conns) in [
        ("1KiB", 1024usize, 1usize),
        ("1KiB", 1024, 16),
        ("1MiB", 1024 * 1024, 1),
    ] {
        let data = body(size);
        let mut group = c.benchmark_group(format!("proxy_{label}_x{conns}"));
        if size > 1024 {
            group.throughput(Throughput::Bytes(size as u64));
        } else {
            group.throughput(Throughput::Elements(conns as u64));
        }
        group.measurement_time(Duration::from_secs(4));
        for (name, url) in [("direct", upstream.url()), ("through_proxy", proxy.url())] {
            let cl = client(&url, conns as u32);
            client_rt.block_on(async {
                let v = cl.scan_bytes(data.clone(), &meta).await.verdict;
                assert!(matches!(v, Verdict::Clean), "{name}: {v:?}");
            });
            group.bench_function(BenchmarkId::new(name, conns), |b| {
                b.iter_custom(|iters| {
                    let (cl, data, meta) = (cl.clone(), data.clone(), meta.clone());
                    on_worker(&client_rt, iters, move || {
                        let (cl, data, meta) = (cl.clone(), data.clone(), meta.clone());
                        async move { scan_round(&cl, &data, &meta, conns).await }
                    })
                });
            });
        }
        group.finish();
    }
    // One per client connection when the pool keeps them all (`Upstream::with_max_idle`).
    eprintln!("upstream connections opened: {}", up.connections_opened());
    drop(proxy);
    drop(upstream);
}

criterion_group!(benches, bench_proxy);
criterion_main!(benches);
