//! A 1 GiB file through the CLI: peak memory must stay small and not grow with the size.

use icap_mock_server::{MockServer, ServiceConfig};

async fn peak_kib(server: &MockServer, size: u64) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    // Sparse: reads as zeros without using disk.
    std::fs::File::create(&path).unwrap().set_len(size).unwrap();
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_icap-client"))
        .args([
            "--print-peak-memory",
            "scan",
            "--max-size",
            "0",
            "--deadline",
            "600s",
            "-s",
        ])
        .arg(server.url())
        .arg(&path)
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{err}",
        String::from_utf8_lossy(&o.stdout)
    );
    let line = err
        .lines()
        .find(|l| l.starts_with("peak memory"))
        .expect("peak line");
    let kib: u64 = line
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM in kB");
    eprintln!("size {size} bytes: peak memory {kib} KiB");
    kib
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_file_peak_memory_does_not_grow() {
    let server = MockServer::builder()
        .service(ServiceConfig::new("avscan").echo_threshold(1024))
        .start()
        .await;
    let small = peak_kib(&server, 16 * 1024 * 1024).await;
    let big = peak_kib(&server, 1024 * 1024 * 1024).await;
    assert!(big < 64 * 1024, "peak {big} KiB for 1 GiB");
    assert!(
        big < small + 8 * 1024,
        "peak grew with the file: {small} KiB for 16 MiB, {big} KiB for 1 GiB"
    );
}
