//! Verdict integrity (issue 7), end to end against raw-socket fake servers: a verdict is
//! given only for exactly the bytes of the file, only from a legal answer, and a connection
//! that saw anything odd is never reused.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use icap_client::{Guard, Policy, ScanMeta, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};

use icap_test_support::find;

use crate::common::{builder, write};

/// OPTIONS answer of the fake servers: no preview, so a body goes out whole.
const OPTIONS: &[u8] = b"ICAP/1.0 200 OK\r\nMethods: RESPMOD\r\nISTag: \"fake-1\"\r\nAllow: 204\r\nEncapsulated: null-body=0\r\n\r\n";
const NO_CONTENT: &[u8] = b"ICAP/1.0 204 No Content\r\nISTag: \"fake-1\"\r\n\r\n";
/// The end of a chunked body with nothing after it (a terminal chunk).
const TERMINAL: &[u8] = b"\r\n0\r\n\r\n";

/// What a fake server saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    respmods: AtomicUsize,
    /// Every RESPMOD request as received, up to the end of its body (or of the stream).
    requests: Mutex<Vec<Vec<u8>>>,
}

/// A fake ICAP server: OPTIONS gets [`OPTIONS`]; the n-th RESPMOD gets `answers[n]` (then
/// 204) once its whole body is in. Accepts up to 16 connections, each until it closes.
async fn fake(answers: Vec<Vec<u8>>) -> (String, Arc<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("icap://{}/avscan", l.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    let answers = Arc::new(answers);
    let s2 = seen.clone();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((s, _)) = l.accept().await else { return };
            s2.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(s, s2.clone(), answers.clone()));
        }
    });
    (url, seen)
}

async fn serve(mut s: TcpStream, seen: Arc<Seen>, answers: Arc<Vec<Vec<u8>>>) {
    let mut got: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // One request: the ICAP head, then (RESPMOD) everything up to the terminal chunk.
        let end = loop {
            if let Some(h) = find(&got, b"\r\n\r\n") {
                if got.starts_with(b"OPTIONS") {
                    break h + 4;
                }
                if let Some(t) = find(&got[h..], TERMINAL) {
                    break h + t + TERMINAL.len();
                }
            }
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
                .await
                .unwrap_or(Ok(0))
                .unwrap_or(0);
            if n == 0 {
                if got.starts_with(b"RESPMOD") {
                    seen.requests.lock().await.push(std::mem::take(&mut got));
                }
                return;
            }
            got.extend_from_slice(&buf[..n]);
        };
        let req: Vec<u8> = got.drain(..end).collect();
        let answer = if req.starts_with(b"OPTIONS") {
            OPTIONS.to_vec()
        } else {
            let k = seen.respmods.fetch_add(1, Ordering::SeqCst);
            seen.requests.lock().await.push(req);
            answers
                .get(k)
                .cloned()
                .unwrap_or_else(|| NO_CONTENT.to_vec())
        };
        if s.write_all(&answer).await.is_err() {
            return;
        }
    }
}

fn respmod_200(extra_icap: &str, enc: &str, rest: &str) -> Vec<u8> {
    format!("ICAP/1.0 200 OK\r\nISTag: \"fake-1\"\r\n{extra_icap}{enc}\r\n{rest}").into_bytes()
}

async fn scan(url: &str, path: &Path) -> Verdict {
    builder(url)
        .build()
        .unwrap()
        .scan_file(path, &ScanMeta::default())
        .await
        .verdict
}

// ---- class 2: a connection is never pooled with bytes in its buffer ----

#[tokio::test]
async fn bytes_after_a_complete_answer_keep_the_connection_out_of_the_pool() {
    let mut first = NO_CONTENT.to_vec();
    first.extend_from_slice(NO_CONTENT); // an unsolicited second response
    let mut garbage = NO_CONTENT.to_vec();
    garbage.extend_from_slice(b"garbage");
    for extra in [first, garbage] {
        let (url, seen) = fake(vec![extra]).await;
        let client = builder(&url).build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.txt", b"first file");
        let b = write(dir.path(), "b.txt", b"second file");
        let r = client.scan_file(&a, &ScanMeta::default()).await;
        assert!(r.verdict.is_clean(), "{:?}", r.verdict);
        assert_eq!(
            client.server(0).unwrap().idle_connections(),
            0,
            "a connection with leftovers was pooled"
        );
        // The next clean file, with delete_on_scan_fail, is scanned on a fresh connection
        // and kept.
        let guard = Guard::new(
            client.clone(),
            Policy::default().with_delete_on_scan_fail(true),
        )
        .unwrap();
        let out = guard.check_upload(&b, None).await;
        assert!(out.report.verdict.is_clean(), "{:?}", out.report.verdict);
        assert!(b.exists(), "a clean file was deleted");
        assert!(seen.connections.load(Ordering::SeqCst) >= 2);
    }
}

#[tokio::test]
async fn a_200_without_encapsulated_with_a_body_in_the_buffer_fails_and_is_not_pooled() {
    let bad = b"ICAP/1.0 200 OK\r\nISTag: \"fake-1\"\r\n\r\nHTTP/1.1 200 OK\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        .to_vec();
    let (url, _) = fake(vec![bad]).await;
    let client = builder(&url).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.txt", b"hello");
    let r = client.scan_file(&a, &ScanMeta::default()).await;
    let e = r.verdict.error().expect("failed");
    assert!(e.is_protocol(), "{e:?}");
    assert_eq!(client.server(0).unwrap().idle_connections(), 0);
    let r = client.scan_file(&a, &ScanMeta::default()).await;
    assert!(r.verdict.is_clean(), "the next scan works: {:?}", r.verdict);
}

// ---- class 3: answers that break the rules for the request sent ----

#[tokio::test]
async fn answers_that_break_the_rules_fail_and_are_never_pooled() {
    let http = "HTTP/1.1 200 OK\r\n\r\n";
    let block = "HTTP/1.1 403 Forbidden\r\n\r\n";
    let rows: Vec<(&str, Vec<u8>)> = vec![
        (
            "unknown status 299",
            b"ICAP/1.0 299 Fine\r\nISTag: \"fake-1\"\r\n\r\n".to_vec(),
        ),
        (
            "206 without Allow: 206",
            format!(
                "ICAP/1.0 206 Partial Content\r\nISTag: \"fake-1\"\r\nEncapsulated: res-hdr=0, res-body={}\r\n\r\n{block}3\r\nabc\r\n0; use-original-body=0\r\n\r\n",
                block.len()
            )
            .into_bytes(),
        ),
        (
            "200 without Encapsulated to RESPMOD",
            b"ICAP/1.0 200 OK\r\nISTag: \"fake-1\"\r\n\r\n".to_vec(),
        ),
        (
            "200 with only null-body to RESPMOD",
            respmod_200("", "Encapsulated: null-body=0\r\n", ""),
        ),
        (
            "204 that carries a body",
            format!(
                "ICAP/1.0 204 No Content\r\nISTag: \"fake-1\"\r\nEncapsulated: res-hdr=0, res-body={}\r\n\r\n{block}3\r\nabc\r\n0\r\n\r\n",
                block.len()
            )
            .into_bytes(),
        ),
        (
            "100 Continue without a preview",
            b"ICAP/1.0 100 Continue\r\n\r\n".to_vec(),
        ),
        (
            "201 without X-Violations-Found",
            format!(
                "ICAP/1.0 201 Created\r\nISTag: \"fake-1\"\r\nEncapsulated: res-hdr=0, res-body={}\r\n\r\n{http}0\r\n\r\n",
                http.len()
            )
            .into_bytes(),
        ),
    ];
    for (what, answer) in rows {
        let (url, seen) = fake(vec![answer]).await;
        let client = builder(&url).build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.txt", b"abc");
        let r = client.scan_file(&a, &ScanMeta::default()).await;
        match &r.verdict {
            Verdict::Failed { error } => assert!(error.is_protocol(), "{what}: {error:?}"),
            other => panic!("{what}: {other:?}"),
        }
        assert_eq!(
            client.server(0).unwrap().idle_connections(),
            0,
            "{what}: pooled"
        );
        // The next scan takes a new connection.
        let r = client.scan_file(&a, &ScanMeta::default()).await;
        assert!(r.verdict.is_clean(), "{what}: next scan {:?}", r.verdict);
        assert!(seen.connections.load(Ordering::SeqCst) >= 2, "{what}");
    }
}

#[tokio::test]
async fn a_legal_infection_report_is_still_infected() {
    let block = "HTTP/1.1 403 Forbidden\r\n\r\n";
    let answer = format!(
        "ICAP/1.0 200 OK\r\nISTag: \"fake-1\"\r\nX-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Test;\r\nEncapsulated: res-hdr=0, res-body={}\r\n\r\n{block}0\r\n\r\n",
        block.len()
    );
    let (url, _) = fake(vec![answer.into_bytes()]).await;
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.txt", b"abc");
    let v = scan(&url, &a).await;
    assert_eq!(v.threats()[0].name, "Eicar-Test", "{v:?}");
}

// ---- class 1: the file changed during the upload ----

/// A server that reads the first `first` bytes of the RESPMOD, then tells the test (which
/// changes the file) and waits for its go before reading on. Returns the bytes received
/// when the client closed.
async fn slow_reader(first: usize) -> (String, mpsc::Receiver<()>, mpsc::Sender<()>, Arc<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("icap://{}/avscan", l.local_addr().unwrap());
    let (reached_tx, reached_rx) = mpsc::channel(1);
    let (go_tx, go_rx) = mpsc::channel::<()>(1);
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    let reached_tx = Arc::new(Mutex::new(Some(reached_tx)));
    let go_rx = Arc::new(Mutex::new(go_rx));
    tokio::spawn(async move {
        // OPTIONS and the scan may come on one connection or on two.
        for _ in 0..4 {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let (reached_tx, go_rx, s2) = (reached_tx.clone(), go_rx.clone(), s2.clone());
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    while find(&got, b"\r\n\r\n").is_none() {
                        let n = s.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        got.extend_from_slice(&buf[..n]);
                    }
                    if !got.starts_with(b"OPTIONS") {
                        break;
                    }
                    s.write_all(OPTIONS).await.unwrap();
                    got.clear();
                }
                while got.len() < first {
                    let n = s.read(&mut buf).await.unwrap();
                    assert!(n > 0);
                    got.extend_from_slice(&buf[..n]);
                }
                let Some(tx) = reached_tx.lock().await.take() else {
                    return;
                };
                tx.send(()).await.unwrap();
                go_rx.lock().await.recv().await.unwrap();
                loop {
                    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
                        .await
                        .unwrap_or(Ok(0))
                        .unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if got.ends_with(TERMINAL) {
                        // A complete request: answer it, as a careless server would.
                        let _ = s.write_all(NO_CONTENT).await;
                    }
                }
                s2.requests.lock().await.push(got);
            });
        }
    });
    (url, reached_rx, go_tx, seen)
}

async fn changed_during_upload(change: impl FnOnce(&Path)) -> (Verdict, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, vec![b'a'; 48 << 20]).unwrap();
    let (url, mut reached, go, seen) = slow_reader(256 * 1024).await;
    let client = builder(&url)
        .max_size(None)
        .timeouts(
            icap_client::Timeouts::default()
                .with_idle(Duration::from_secs(10))
                .with_deadline(Duration::from_secs(60), Duration::ZERO),
        )
        .build()
        .unwrap();
    let p2 = path.clone();
    let scan = tokio::spawn(async move { client.scan_file(&p2, &ScanMeta::default()).await });
    tokio::time::timeout(Duration::from_secs(20), reached.recv())
        .await
        .expect("the scan reached the server")
        .unwrap();
    change(&path);
    go.send(()).await.unwrap();
    let report = scan.await.unwrap();
    // Wait for the server to see the close.
    for _ in 0..100 {
        if !seen.requests.lock().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = seen
        .requests
        .lock()
        .await
        .pop()
        .expect("server saw the request");
    (report.verdict, got)
}

#[tokio::test]
async fn a_file_truncated_during_the_upload_gets_no_verdict_and_no_terminal_chunk() {
    let (v, got) = changed_during_upload(|p| {
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        f.set_len(1 << 20).unwrap();
    })
    .await;
    let e = v.error().unwrap_or_else(|| panic!("not failed: {v:?}"));
    assert!(e.is_source(), "{e:?}");
    assert!(!got.ends_with(TERMINAL), "the terminal chunk was sent");
}

#[tokio::test]
async fn a_file_grown_during_the_upload_gets_no_verdict_and_no_terminal_chunk() {
    let (v, got) = changed_during_upload(|p| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
        f.write_all(&vec![b'b'; 1 << 20]).unwrap();
    })
    .await;
    let e = v.error().unwrap_or_else(|| panic!("not failed: {v:?}"));
    assert!(e.is_source(), "{e:?}");
    assert!(!got.ends_with(TERMINAL), "the terminal chunk was sent");
}

#[tokio::test]
async fn a_file_rewritten_in_place_during_the_upload_gets_no_verdict() {
    let (v, got) = changed_during_upload(|p| {
        use std::io::{Seek, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        f.seek(std::io::SeekFrom::Start(40 << 20)).unwrap();
        f.write_all(b"X5O!P%@AP").unwrap();
        // Make sure the modification time moves even on coarse clocks.
        let t = std::time::SystemTime::now() + Duration::from_secs(5);
        f.set_modified(t).unwrap();
    })
    .await;
    let e = v.error().unwrap_or_else(|| panic!("not failed: {v:?}"));
    assert!(e.is_source(), "{e:?}");
    assert!(!got.ends_with(TERMINAL), "the terminal chunk was sent");
}

#[tokio::test]
async fn a_reader_shorter_or_longer_than_declared_gets_no_verdict() {
    for (declared, actual) in [(1u64 << 20, 100 * 1024usize), (1000, 5000)] {
        let (url, seen) = fake(vec![]).await;
        let client = builder(&url).build().unwrap();
        let body = vec![b'a'; actual];
        let r = client
            .scan_reader(&body[..], Some(declared), &ScanMeta::new("stream.bin"))
            .await;
        let e = r
            .verdict
            .error()
            .unwrap_or_else(|| panic!("{declared}/{actual}: {:?}", r.verdict));
        assert!(e.is_source(), "{e:?}");
        drop(client);
        tokio::time::sleep(Duration::from_millis(100)).await;
        for req in seen.requests.lock().await.iter() {
            assert!(
                !req.ends_with(TERMINAL),
                "{declared}/{actual}: terminal chunk sent"
            );
        }
        assert_eq!(
            seen.respmods.load(Ordering::SeqCst),
            0,
            "a server answered it"
        );
    }
}

#[tokio::test]
async fn an_exact_reader_and_an_unchanged_file_are_clean() {
    let (url, _) = fake(vec![]).await;
    let client = builder(&url).build().unwrap();
    let body = vec![b'a'; 300_000];
    let r = client
        .scan_reader(&body[..], Some(300_000), &ScanMeta::new("stream.bin"))
        .await;
    assert!(r.verdict.is_clean(), "{:?}", r.verdict);
    assert_eq!(r.sent, 300_000);
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.bin", &body);
    let r = client.scan_file(&a, &ScanMeta::default()).await;
    assert!(r.verdict.is_clean(), "{:?}", r.verdict);
    assert_eq!(r.sent, 300_000);
}

// ---- adapted body cap ----

#[tokio::test]
async fn an_endless_adapted_body_stops_at_the_cap_with_too_large() {
    let http = "HTTP/1.1 200 OK\r\n\r\n";
    let mut answer = format!(
        "ICAP/1.0 200 OK\r\nISTag: \"fake-1\"\r\nEncapsulated: res-hdr=0, res-body={}\r\n\r\n{http}",
        http.len()
    )
    .into_bytes();
    for _ in 0..64 {
        answer.extend_from_slice(b"400\r\n");
        answer.extend_from_slice(&[b'z'; 0x400]);
        answer.extend_from_slice(b"\r\n");
    }
    let (url, _) = fake(vec![answer]).await;
    let client = builder(&url)
        .max_adapted_body(Some(10_000))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.txt", b"abc");
    let r = client.scan_file(&a, &ScanMeta::default()).await;
    let e = r
        .verdict
        .error()
        .unwrap_or_else(|| panic!("{:?}", r.verdict));
    assert!(e.is_too_large(), "{e:?}");
    assert!(!e.is_protocol());
    assert_eq!(client.server(0).unwrap().idle_connections(), 0);
}

// ---- knobs ----

#[tokio::test]
async fn allow_204_off_sends_no_allow_header_and_a_204_outside_a_preview_fails() {
    let (url, seen) = fake(vec![]).await;
    let client = builder(&url)
        .allow_204(false)
        .preview(icap_client::PreviewMode::Off)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.txt", b"abc");
    let r = client.scan_file(&a, &ScanMeta::default()).await;
    let e = r
        .verdict
        .error()
        .unwrap_or_else(|| panic!("{:?}", r.verdict));
    assert!(e.is_protocol(), "{e:?}");
    let reqs = seen.requests.lock().await;
    let head = String::from_utf8_lossy(&reqs[0]).to_ascii_lowercase();
    assert!(!head.contains("allow: 204"), "{head}");
}

#[tokio::test]
async fn allow_206_is_refused_at_build() {
    let e = builder("icap://127.0.0.1:1/avscan")
        .allow_206(true)
        .build()
        .unwrap_err();
    assert!(e.is_config());
    assert!(e.to_string().contains("206"), "{e}");
}

#[tokio::test]
async fn a_retry_waits_its_back_off_first() {
    let (url, seen) = fake(vec![
        b"ICAP/1.0 503 Service Unavailable\r\nISTag: \"fake-1\"\r\n\r\n".to_vec(),
    ])
    .await;
    let client = builder(&url)
        .retries(1)
        .retry_backoff(Duration::from_millis(400), Duration::from_secs(1))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.txt", b"abc");
    let t0 = std::time::Instant::now();
    let r = client.scan_file(&a, &ScanMeta::default()).await;
    assert!(r.verdict.is_clean(), "{:?}", r.verdict);
    assert_eq!(seen.respmods.load(Ordering::SeqCst), 2);
    let waited = t0.elapsed();
    // 400 ms plus up to 200 ms of jitter: never back to back.
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
}
