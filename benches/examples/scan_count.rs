//! Small scans for counting system calls with `strace` (counts, not times). The mock runs in
//! one process and the client in another, so that `strace` sees only the client:
//!
//! ```sh
//! cargo build --release -p icap-benches --example scan_count
//! target/release/examples/scan_count mock &          # prints the mock's URL, serves until killed
//! strace -f -c -o /tmp/s.txt target/release/examples/scan_count client URL 2000 [CONNS [task]]
//! ```
//!
//! The client is set up as in `benches/scan.rs` (one connection, no body digest) and scans a
//! 1 KiB clean body from memory `N` times one after the other, after one warm-up scan (with
//! `CONNS` > 1: `N` rounds of `CONNS` parallel scans); the difference between two values of
//! `N` gives the calls per scan. With `CONNS` > 1 or `task`, the loop runs in one task on the
//! runtime's worker and spawns each scan there, as `benches/scan.rs` times its rounds; a single
//! connection without `task` scans in `block_on`. `scan_count icap-rs URL N [CONNS [task]]` makes the same scans with icap-rs, the peer of
//! `benches/scan.rs`.

use icap_client::{Client, ScanMeta, Verdict};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("mock") => runtime().block_on(async {
            let mock = icap_benches::support::bench_mock().start().await;
            println!("{}", mock.url());
            std::future::pending::<()>().await;
        }),
        Some("client") => {
            let url = args.get(1).expect("the mock's URL").clone();
            let n: usize = args
                .get(2)
                .map_or(2000, |s| s.parse().expect("a number of scans"));
            let conns: u32 = args
                .get(3)
                .map_or(1, |s| s.parse().expect("a number of connections"));
            let on_worker = args.get(4).is_some_and(|s| s == "task");
            let body = icap_benches::support::body(1024);
            let rt = runtime();
            let work = async move {
                let client = Client::builder()
                    .server(url.as_str())
                    .max_connections(conns)
                    .max_size(None)
                    .body_digest(false)
                    .build()
                    .expect("client");
                let meta = ScanMeta::new("file.bin");
                for _ in 0..=n {
                    if conns == 1 && !on_worker {
                        // Awaited in place, in `block_on`.
                        let v = client.scan_bytes(body.clone(), &meta).await.verdict;
                        assert!(matches!(v, Verdict::Clean), "expected clean, got {v:?}");
                        continue;
                    }
                    // As benches/scan.rs times a row: a round of scans spawned as tasks on
                    // the runtime's worker, which also drives I/O.
                    icap_benches::support::scan_round(&client, &body, &meta, conns as usize).await;
                }
            };
            if conns == 1 && !on_worker {
                rt.block_on(work);
            } else {
                // The whole loop in one task on the worker, as benches/scan.rs times its
                // rounds (`support::on_worker`): the scans are spawned and joined there.
                rt.block_on(rt.spawn(work)).expect("the scan loop");
            }
            println!("{n} rounds of {conns} scans after one warm-up round");
        }
        Some("icap-rs") => icap_rs_scans(&args),
        _ => {
            eprintln!(
                "usage: scan_count mock | scan_count client URL N | scan_count icap-rs URL N"
            );
        }
    }
}

/// `scan_count icap-rs URL N [CONNS [task]]`: the same small scans by icap-rs.
fn icap_rs_scans(args: &[String]) {
    // The same scans by icap-rs (the peer of benches/scan.rs), for counting its work.
    let url: icap_proto::Uri = args
        .get(1)
        .expect("the mock's URL")
        .parse()
        .expect("an ICAP URL");
    let n: usize = args
        .get(2)
        .map_or(2000, |s| s.parse().expect("a number of scans"));
    let conns: usize = args
        .get(3)
        .map_or(1, |s| s.parse().expect("a number of connections"));
    // One client per connection: an icap-rs client keeps one idle connection.
    let clients: Vec<_> = (0..conns.max(1))
        .map(|_| {
            std::sync::Arc::new(
                icap_rs::Client::builder()
                    .host(url.host())
                    .port(url.port())
                    .keep_alive(true)
                    .build(),
            )
        })
        .collect();
    let body = icap_benches::support::body(1024);
    let req = std::sync::Arc::new(icap_benches::support::icap_rs_request(url.service(), &body));
    let on_worker = conns > 1 || args.get(4).is_some_and(|s| s == "task");
    let rt = runtime();
    let work = async move {
        for _ in 0..=n {
            if !on_worker {
                let r = clients[0].send(&req).await.expect("icap-rs scan");
                assert_eq!(r.status_code().as_u16(), 204, "a clean scan");
                continue;
            }
            // As benches/scan.rs runs it: a round of tasks, one per connection.
            let tasks: Vec<_> = clients
                .iter()
                .map(|c| {
                    let (c, r) = (c.clone(), req.clone());
                    tokio::spawn(async move { c.send(&r).await })
                })
                .collect();
            for t in tasks {
                let r = t.await.expect("scan task").expect("icap-rs scan");
                assert_eq!(r.status_code().as_u16(), 204, "a clean scan");
            }
        }
    };
    if on_worker {
        rt.block_on(rt.spawn(work)).expect("the scan loop");
    } else {
        rt.block_on(work);
    }
    println!("{n} rounds of {conns} icap-rs scans after one warm-up round");
}
