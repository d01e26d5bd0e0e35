//! Small scans for counting system calls with `strace` (counts, not times). The mock runs in
//! one process and the client in another, so that `strace` sees only the client:
//!
//! ```sh
//! cargo build --release -p icap-benches --example scan_count
//! target/release/examples/scan_count mock &          # prints the mock's URL, serves until killed
//! strace -f -c -o /tmp/s.txt target/release/examples/scan_count client URL 2000
//! ```
//!
//! The client is set up as in `benches/scan.rs` (one connection, no body digest) and scans a
//! 1 KiB clean body from memory `N` times one after the other, after one warm-up scan; the
//! difference between two values of `N` gives the calls per scan.

use bytes::Bytes;
use icap_client::{Client, ScanMeta, Verdict};
use icap_mock_server::MockServer;

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
            let mock = MockServer::builder().body_digest(false).start().await;
            println!("{}", mock.url());
            std::future::pending::<()>().await;
        }),
        Some("client") => {
            let url = args.get(1).expect("the mock's URL");
            let n: usize = args
                .get(2)
                .map_or(2000, |s| s.parse().expect("a number of scans"));
            let body = Bytes::from(vec![b'a'; 1024]);
            runtime().block_on(async {
                let client = Client::builder()
                    .server(url.as_str())
                    .max_connections(1)
                    .max_size(None)
                    .body_digest(false)
                    .build()
                    .expect("client");
                let meta = ScanMeta::new("file.bin");
                for _ in 0..=n {
                    let v = client.scan_bytes(body.clone(), &meta).await.verdict;
                    assert!(matches!(v, Verdict::Clean), "expected clean, got {v:?}");
                }
            });
            println!("{n} scans after one warm-up");
        }
        _ => eprintln!("usage: scan_count mock | scan_count client URL N"),
    }
}
