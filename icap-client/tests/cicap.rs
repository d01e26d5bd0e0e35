//! Interoperability with a real server: Debian's c-icap with the `virus_scan` (`ClamAV`) and
//! `echo` services, started by `.ci/cicap-server.sh PORT` (which generates a one-signature
//! EICAR database). Fails, never skips, when c-icap is not installed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use icap_client::{Client, Method, PreviewMode, ScanMeta, Timeouts, Verdict};

/// The name c-icap reports for EICAR with the generated signature (see the script's header).
const EICAR_NAME: &str = "Eicar-Test-Signature.UNOFFICIAL";
const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// The running server; stopped with SIGTERM (so the script cleans up) when dropped.
struct CIcap {
    child: Child,
    port: u16,
}

impl Drop for CIcap {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

fn start() -> CIcap {
    let installed = ["/usr/bin/c-icap", "/usr/sbin/c-icap"]
        .iter()
        .any(|p| Path::new(p).exists());
    assert!(
        installed,
        "c-icap is not installed: run `.ci/install-peers` (as root) to install c-icap, \
         libc-icap-mod-virus-scan and ClamAV; this test does not skip"
    );
    let script = workspace_root().join(".ci/cicap-server.sh");
    assert!(script.exists(), "{} is missing", script.display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = Command::new("bash")
        .arg(&script)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run cicap-server.sh");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.trim() == "ready" {
                let _ = tx.send(());
            }
        }
    });
    let server = CIcap { child, port };
    rx.recv_timeout(Duration::from_secs(90))
        .unwrap_or_else(|_| {
            panic!("cicap-server.sh did not print `ready` within 90 s (see its stderr above)")
        });
    server
}

fn client(url: &str, preview: PreviewMode, method: Method) -> Client {
    Client::builder()
        .server(url)
        .preview(preview)
        .method(method)
        .timeouts(
            Timeouts::default()
                .with_idle(Duration::from_secs(30))
                .with_deadline(Duration::from_secs(60), Duration::from_secs(1)),
        )
        .build()
        .expect("valid client")
}

fn assert_eicar(v: &Verdict, what: &str) {
    match v {
        Verdict::Infected { threats } => assert!(
            threats.iter().any(|t| t.name == EICAR_NAME),
            "{what}: threats {threats:?}, expected {EICAR_NAME}"
        ),
        other => panic!("{what}: expected infected, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_c_icap() {
    let server = start();
    let base = format!("icap://127.0.0.1:{}", server.port);
    let av = format!("{base}/virus_scan");
    let echo = format!("{base}/echo");

    // OPTIONS on both services.
    for url in [&av, &echo] {
        let c = client(url, PreviewMode::Auto, Method::Respmod);
        let r = c.test_server(&c.server(0).unwrap()).await;
        assert!(r.ok, "OPTIONS {url}: {r:?}");
        let o = r.options.expect("an OPTIONS answer");
        assert!(o.methods.iter().any(|m| m == "RESPMOD"), "{url}: {o:?}");
        assert!(o.istag.is_some(), "{url}: {o:?}");
    }
    let wrong = client(
        &format!("{base}/no_such_service"),
        PreviewMode::Auto,
        Method::Respmod,
    );
    assert_eq!(
        wrong.test_server(&wrong.server(0).unwrap()).await.diagnosis,
        icap_client::Diagnosis::ServiceNotFound
    );

    let mut big_infected = vec![b'x'; 300_000];
    big_infected[150_000..150_000 + EICAR.len()].copy_from_slice(EICAR);
    for (preview, label) in [
        (PreviewMode::Auto, "with preview"),
        (PreviewMode::Off, "without preview"),
    ] {
        let c = client(&av, preview, Method::Respmod);
        // Several scans in a row over one keep-alive connection.
        for round in 0..3 {
            let what = format!("{label}, round {round}");
            let clean = c
                .scan_bytes(
                    &b"a perfectly harmless text\n"[..],
                    &ScanMeta::new("clean.txt"),
                )
                .await;
            assert!(clean.verdict.is_clean(), "{what}: clean: {clean:?}");
            let r = c.scan_bytes(EICAR, &ScanMeta::new("eicar.com")).await;
            assert_eicar(&r.verdict, &format!("{what}: eicar"));
            let r = c
                .scan_bytes(vec![b'y'; 300_000], &ScanMeta::new("big.txt"))
                .await;
            assert!(r.verdict.is_clean(), "{what}: big clean: {r:?}");
            let r = c
                .scan_bytes(big_infected.clone(), &ScanMeta::new("big.bin"))
                .await;
            assert_eicar(&r.verdict, &format!("{what}: EICAR inside a big file"));
        }
        assert_eq!(
            c.server(0).unwrap().idle_connections(),
            1,
            "{label}: keep-alive"
        );
    }

    // Files from disk, and REQMOD.
    let dir = tempfile::tempdir().expect("temp dir");
    let f = dir.path().join("upload.com");
    std::fs::write(&f, EICAR).expect("write");
    let c = client(&av, PreviewMode::Auto, Method::Respmod);
    assert_eicar(&c.scan_file(&f, &ScanMeta::default()).await.verdict, "file");
    let c = client(&av, PreviewMode::Auto, Method::Reqmod);
    assert_eicar(
        &c.scan_bytes(EICAR, &ScanMeta::new("up.com")).await.verdict,
        "REQMOD",
    );

    // The echo service returns the content unchanged: clean, whichever way it answers.
    let c = client(&echo, PreviewMode::Auto, Method::Respmod);
    for body in [&b"echo me"[..], &vec![b'e'; 200_000][..]] {
        let r = c.scan_bytes(body.to_vec(), &ScanMeta::new("e.txt")).await;
        assert!(r.verdict.is_clean(), "echo: {r:?}");
    }
    drop(server);
}
