//! Scripted raw-byte servers for behaviours the mock does not offer: a `200` that changes
//! the content, a `200` echo, and a keep-alive connection closed just as it is reused.

use icap_client::{ScanMeta, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use icap_test_support::read_until;

use crate::common::builder;

const OPTIONS: &[u8] = b"ICAP/1.0 200 OK\r\nMethods: RESPMOD\r\nISTag: \"raw-1\"\r\nPreview: 0\r\nEncapsulated: null-body=0\r\n\r\n";

/// Serves OPTIONS, then one scan answered by `answer` (after the body is in).
async fn one_scan_server(answer: Vec<u8>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("icap://{}/avscan", l.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        read_until(&mut s, b"\r\n\r\n").await;
        s.write_all(OPTIONS).await.unwrap();
        // Preview 0 of a non-empty body: "0\r\n\r\n", then 100 Continue, then the body.
        read_until(&mut s, b"\r\n0\r\n\r\n").await;
        s.write_all(b"ICAP/1.0 100 Continue\r\n\r\n").await.unwrap();
        read_until(&mut s, b"\r\n0\r\n\r\n").await;
        s.write_all(&answer).await.unwrap();
        let mut sink = [0u8; 1024];
        while s.read(&mut sink).await.unwrap_or(0) > 0 {}
    });
    url
}

fn http_200_with_body(body: &str) -> Vec<u8> {
    let http = "HTTP/1.1 200 OK\r\n\r\n";
    format!(
        "ICAP/1.0 200 OK\r\nISTag: \"raw-1\"\r\nEncapsulated: res-hdr=0, res-body={}\r\n\r\n{http}{:x}\r\n{body}\r\n0\r\n\r\n",
        http.len(),
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn modified_content_without_threat_is_modified_not_clean() {
    let url = one_scan_server(http_200_with_body("this file was replaced")).await;
    let dir = tempfile::tempdir().unwrap();
    let path = crate::common::write(dir.path(), "doc.txt", b"original content");
    let r = builder(&url)
        .build()
        .unwrap()
        .scan_file(&path, &ScanMeta::default())
        .await;
    match r.verdict {
        Verdict::Modified {
            http_status,
            body_len,
        } => {
            assert_eq!(http_status, Some(200));
            assert_eq!(body_len, 22);
        }
        other => panic!("{other:?}"),
    }
    assert!(path.exists());
}

#[tokio::test]
async fn unchanged_echo_is_clean() {
    let url = one_scan_server(http_200_with_body("original content")).await;
    let r = builder(&url)
        .build()
        .unwrap()
        .scan_bytes(&b"original content"[..], &ScanMeta::new("doc.txt"))
        .await;
    assert!(r.verdict.is_clean(), "{r:?}");
}

#[tokio::test]
async fn pooled_connection_closed_as_it_is_reused_is_retried() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("icap://{}/avscan", l.local_addr().unwrap());
    let server = tokio::spawn(async move {
        // Connection 1: OPTIONS and one scan, then the next request head arrives and the
        // server closes without a byte (its idle timer fired at that moment).
        let (mut s, _) = l.accept().await.unwrap();
        read_until(&mut s, b"\r\n\r\n").await;
        s.write_all(OPTIONS).await.unwrap();
        read_until(&mut s, b"0; ieof\r\n\r\n").await;
        s.write_all(b"ICAP/1.0 204 No Content\r\nISTag: \"raw-1\"\r\n\r\n")
            .await
            .unwrap();
        read_until(&mut s, b"RESPMOD").await;
        drop(s);
        // Connection 2: the retry.
        let (mut s, _) = l.accept().await.unwrap();
        let req = read_until(&mut s, b"0; ieof\r\n\r\n").await;
        s.write_all(b"ICAP/1.0 204 No Content\r\nISTag: \"raw-1\"\r\n\r\n")
            .await
            .unwrap();
        req
    });
    let c = builder(&url).build().unwrap();
    // Preview 0 and empty bodies end with ieof right away.
    assert!(
        c.scan_bytes(&b""[..], &ScanMeta::new("a"))
            .await
            .verdict
            .is_clean()
    );
    let r = c.scan_bytes(&b""[..], &ScanMeta::new("b")).await;
    assert!(r.verdict.is_clean(), "{r:?}");
    assert_eq!(r.attempts, 2);
    let second = server.await.unwrap();
    assert!(String::from_utf8_lossy(&second).contains("/b HTTP/1.1"));
}

#[tokio::test]
async fn tls_handshake_timeout() {
    // Accepts and never speaks: the TLS handshake cannot finish.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("icaps://{}/avscan", l.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut s = s;
        let mut sink = [0u8; 1024];
        while s.read(&mut sink).await.unwrap_or(0) > 0 {}
    });
    let c = builder(&url)
        .timeouts(
            icap_client::Timeouts::default()
                .with_tls_handshake(std::time::Duration::from_millis(300)),
        )
        .build()
        .unwrap();
    let r = c.scan_bytes(&b"x"[..], &ScanMeta::new("a")).await;
    assert_eq!(
        r.verdict.error().unwrap().timeout_phase(),
        Some(icap_client::Phase::TlsHandshake),
        "{r:?}"
    );
    drop(c);
    hold.abort();
}

#[tokio::test]
async fn connect_timeout_when_syns_are_dropped() {
    // A listener whose accept queue is full drops new SYNs (Linux), so connect hangs.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let l = sock.listen(0).unwrap();
    let addr = l.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let c = builder(&format!("icap://{addr}/avscan"))
        .connect_timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let r = c.scan_bytes(&b"x"[..], &ScanMeta::new("a")).await;
    let e = r.verdict.error().unwrap();
    assert_eq!(
        e.timeout_phase(),
        Some(icap_client::Phase::Connect),
        "{e:?}"
    );
    drop(l);
}
