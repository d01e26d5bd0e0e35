//! OPTIONS, EICAR detection, 204 / 200 echo, preview, keep-alive, journal, signatures.

use icap_mock_server::{Mock, MockServer, Reply, ServiceConfig, matchers::any};
use icap_proto::{Method, verdict};
use sha2::{Digest, Sha256};

use crate::support::*;

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

#[tokio::test]
async fn options_advertises_the_service() {
    let server = MockServer::start().await;
    assert!(server.url().starts_with("icap://127.0.0.1:"));
    assert!(server.url().ends_with("/avscan"));
    let mut c = Conn::open(server.addr()).await;
    // Squid's shape: no Encapsulated at all.
    c.send(b"OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\nHost: 127.0.0.1\r\nAllow: 204, trailers\r\n\r\n")
        .await;
    let a = c.answer(Method::Options).await;
    assert_eq!(a.status(), 200);
    let o = icap_proto::OptionsResponse::from_head(&a.head).unwrap();
    assert_eq!(o.methods, vec![Method::Respmod, Method::Reqmod]);
    assert_eq!(o.preview, Some(1024));
    assert!(o.allow_204);
    assert_eq!(o.max_connections, Some(100));
    assert_eq!(o.options_ttl, Some(std::time::Duration::from_secs(3600)));
    assert_eq!(o.transfer_preview, vec!["*".to_owned()]);
    assert!(o.service.is_some());
    assert_eq!(o.istag.as_deref(), Some(server.istag().as_str()));
    assert!(
        a.text().contains("Encapsulated: null-body=0\r\n"),
        "{}",
        a.text()
    );
    // Keep-alive: a second OPTIONS on the same connection, with Encapsulated this time.
    c.send(b"OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: null-body=0\r\n\r\n")
        .await;
    assert_eq!(c.answer(Method::Options).await.status(), 200);
}

#[tokio::test]
async fn istag_changes_when_rules_change() {
    let server = MockServer::start().await;
    let before = server.istag();
    Mock::given(any())
        .respond_with(Reply::clean())
        .mount(&server)
        .await;
    assert_ne!(before, server.istag());
    let mut c = Conn::open(server.addr()).await;
    c.send(b"OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n\r\n")
        .await;
    let a = c.answer(Method::Options).await;
    assert_eq!(
        a.header("ISTag").unwrap(),
        format!("\"{}\"", server.istag())
    );
}

#[tokio::test]
async fn eicar_is_reported_in_the_c_icap_shape() {
    let server = MockServer::start().await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(EICAR),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 200);
    let text = a.text();
    assert!(
        text.contains("X-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Test-Signature;\r\n"),
        "{text}"
    );
    assert!(
        text.contains("X-Violations-Found: 1\r\n\t-\r\n\tEicar-Test-Signature\r\n\t0\r\n\t0\r\n"),
        "{text}"
    );
    let res = a.head.http_response.as_ref().unwrap();
    assert_eq!(
        (res.version(), res.status(), res.reason()),
        (&b"HTTP/1.0"[..], 403, &b"Forbidden"[..])
    );
    assert!(String::from_utf8_lossy(&a.body).contains("Eicar-Test-Signature"));
    let threats = verdict::threats(&a.head);
    assert_eq!(threats.len(), 1);
    assert_eq!(threats[0].name, "Eicar-Test-Signature");
}

#[tokio::test]
async fn eicar_inside_a_larger_body_split_byte_by_byte() {
    let server = MockServer::start().await;
    let mut c = Conn::open(server.addr()).await;
    let mut body = filler(5000);
    body.extend_from_slice(EICAR);
    body.extend_from_slice(&filler(777));
    let pieces: Vec<&[u8]> = body.chunks(1).collect();
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&pieces, "0\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert!(a.header("X-Infection-Found").is_some(), "{}", a.text());
    // An almost-EICAR (last byte changed) is clean.
    let mut almost = EICAR.to_vec();
    *almost.last_mut().unwrap() = b'-';
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(&almost),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
}

#[tokio::test]
async fn clean_is_204_only_when_allowed_else_a_200_echo() {
    let server = MockServer::start().await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(b"hello"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 204);
    assert!(a.raw.ends_with(b"\r\n\r\n") && !a.text().contains("Encapsulated"));

    c.send(&respmod(
        "avscan",
        "",
        RES_HDR,
        &chunks(&[b"hel", b"lo"], "0\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 200);
    let res = a.head.http_response.as_ref().expect("echoed response head");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers.get("Content-Type").unwrap().as_bytes(),
        b"application/octet-stream"
    );
    assert_eq!(a.body, b"hello");
}

#[tokio::test]
async fn reqmod_is_scanned_and_echoed() {
    let server = MockServer::start().await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&reqmod(
        "avscan",
        "",
        "/upload/a.txt",
        &one_chunk(b"payload"),
    ))
    .await;
    let a = c.answer(Method::Reqmod).await;
    assert_eq!(a.status(), 200);
    let req = a.head.http_request.as_ref().expect("echoed request head");
    assert_eq!(
        (req.method(), req.target()),
        (&b"POST"[..], &b"/upload/a.txt"[..])
    );
    assert_eq!(a.body, b"payload");

    c.send(&reqmod(
        "avscan",
        "Allow: 204\r\n",
        "/upload/e.com",
        &one_chunk(EICAR),
    ))
    .await;
    let a = c.answer(Method::Reqmod).await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.head.http_response.as_ref().unwrap().status(), 403);
    assert!(a.text().contains("Encapsulated: res-hdr=0, res-body="));
}

#[tokio::test]
async fn preview_gets_100_continue_and_eicar_after_the_preview_is_found() {
    let server = MockServer::start().await;
    let mut c = Conn::open(server.addr()).await;
    // Preview of 10 clean bytes; EICAR straddles the preview boundary's next chunks.
    let rest = [&b"x"[..], &EICAR[..30], &EICAR[30..]].concat();
    c.send(&respmod(
        "avscan",
        "Preview: 10\r\nAllow: 204\r\n",
        RES_HDR,
        &chunks(&[b"0123456789"], "0\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 100);
    c.send(&chunks(&[&rest[..20], &rest[20..]], "0\r\n\r\n"))
        .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 200);
    assert!(a.header("X-Infection-Found").is_some());
    let j = server.journal().await;
    assert_eq!(j[0].preview, Some(10));
    assert_eq!(j[0].preview_bytes, 10);
    assert!(j[0].continued && !j[0].ieof);
    assert_eq!(j[0].body_len, 10 + rest.len() as u64);
}

#[tokio::test]
async fn eicar_in_the_preview_is_answered_straight_away() {
    let server = MockServer::start().await;
    let mut c = Conn::open(server.addr()).await;
    let mut preview = filler(100);
    preview.extend_from_slice(EICAR);
    c.send(&respmod(
        "avscan",
        "Preview: 1024\r\n",
        RES_HDR,
        &chunks(&[&preview], "0\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 200, "no 100 Continue: {}", a.text());
    assert!(a.header("X-Infection-Found").is_some());
    // The client does not send the rest; the connection takes the next request.
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(b"ok"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
    assert!(!server.journal().await[0].continued);
}

#[tokio::test]
async fn preview_with_ieof_may_get_204_without_allow() {
    let server = MockServer::start().await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod(
        "avscan",
        "Preview: 1024\r\n",
        RES_HDR,
        &chunks(&[b"small"], "0; ieof\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 204);
    let j = server.journal().await;
    assert!(j[0].ieof);
    assert_eq!(j[0].preview_bytes, 5);
}

#[tokio::test]
async fn journal_records_heads_sizes_and_hashes() {
    let server = MockServer::start().await;
    let mut c = Conn::open(server.addr()).await;
    let body = filler(3000);
    c.send(&respmod_with_url(
        "avscan",
        "X-Client-IP: 10.1.2.3\r\nX-Client-Username: alice\r\nAllow: 204\r\n",
        "/files/report.pdf",
        &chunks(&[&body[..1000], &body[1000..]], "0\r\n\r\n"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
    let j = server.journal().await;
    assert_eq!(j.len(), 1);
    let t = &j[0];
    assert_eq!(t.method, Method::Respmod);
    assert_eq!(t.service, "avscan");
    assert_eq!(t.icap_header("X-Client-IP").as_deref(), Some("10.1.2.3"));
    assert_eq!(t.icap_header("X-Client-Username").as_deref(), Some("alice"));
    assert_eq!(
        t.http_request.as_ref().unwrap().target(),
        b"/files/report.pdf"
    );
    assert_eq!(t.http_response.as_ref().unwrap().status(), 200);
    assert_eq!(t.body_len, 3000);
    let want: String = hex(&Sha256::digest(&body));
    assert_eq!(t.body_sha256, want);
    assert_eq!((t.preview, t.ieof, t.status), (None, false, Some(204)));
    assert!(t.allow_204 && t.complete && t.threat.is_none());
    server.clear_journal().await;
    assert!(server.journal().await.is_empty());
}

#[tokio::test]
async fn configured_signatures_bytes_sha256_and_filename() {
    let secret = b"top-secret-marker-123";
    let hashed = b"exactly this body";
    let hex: String = hex(&Sha256::digest(hashed));
    let server = MockServer::builder()
        .service(
            ServiceConfig::new("avscan")
                .signature_bytes(std::str::from_utf8(secret).unwrap(), "Policy.Secret")
                .signature_sha256(&hex, "Known.Bad.File")
                .signature_filename("*.exe", "Policy.Executable"),
        )
        .start()
        .await;
    let mut c = Conn::open(server.addr()).await;
    let mut body = filler(2000);
    body.extend_from_slice(secret);
    let pieces: Vec<&[u8]> = body.chunks(7).collect();
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&pieces, "0\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(verdict::threats(&a.head)[0].name, "Policy.Secret");

    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&[&hashed[..5], &hashed[5..]], "0\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(verdict::threats(&a.head)[0].name, "Known.Bad.File");

    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\n",
        "/dl/setup.EXE?x=1",
        &one_chunk(b"MZ"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    let t = &verdict::threats(&a.head)[0];
    assert_eq!(t.name, "Policy.Executable");
    assert_eq!(t.file.as_deref(), Some("setup.EXE"));

    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\n",
        "/dl/readme.txt",
        &one_chunk(b"hi"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
}

#[tokio::test]
async fn many_concurrent_connections_with_keep_alive() {
    let server = MockServer::start().await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let addr = server.addr();
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(addr).await;
            for k in 0..5 {
                let infected = (i + k) % 3 == 0;
                let body = if infected {
                    EICAR.to_vec()
                } else {
                    filler(100)
                };
                c.send(&respmod(
                    "avscan",
                    "Allow: 204\r\n",
                    RES_HDR,
                    &one_chunk(&body),
                ))
                .await;
                let a = c.answer(Method::Respmod).await;
                assert_eq!(a.status(), if infected { 200 } else { 204 });
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(server.journal().await.len(), 200);
}

#[tokio::test]
async fn large_clean_body_without_allow_204_is_echoed_while_it_arrives() {
    let server = MockServer::start().await;
    let c = Conn::open(server.addr()).await;
    let body = filler(3 * 1024 * 1024 + 17);
    let req = respmod(
        "avscan",
        "",
        RES_HDR,
        &chunks(&body.chunks(60_000).collect::<Vec<_>>(), "0\r\n\r\n"),
    );
    // Write and read at once, as proxies do: the echo starts before the body has all arrived.
    let (mut rd, mut wr) = c.stream.into_split();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        wr.write_all(&req).await.unwrap();
        wr
    });
    let mut got = Vec::new();
    let mut dec = icap_proto::ResponseDecoder::new(Method::Respmod, icap_proto::Limits::default());
    let mut buf = bytes::BytesMut::new();
    let mut status = 0;
    'outer: loop {
        use tokio::io::AsyncReadExt;
        while let Some(ev) = dec.decode(&mut buf).unwrap() {
            match ev {
                icap_proto::Event::Head(h) => status = h.status.as_u16(),
                icap_proto::Event::Data(d) => got.extend_from_slice(&d),
                icap_proto::Event::End(_) => break 'outer,
                icap_proto::Event::PreviewEnd { .. } => {}
            }
        }
        assert!(rd.read_buf(&mut buf).await.unwrap() > 0, "closed early");
    }
    writer.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(got.len(), body.len());
    assert!(got == body);
}

#[tokio::test]
async fn eicar_late_in_a_streamed_echo_aborts_the_connection() {
    let server = MockServer::start().await;
    let c = Conn::open(server.addr()).await;
    let mut body = filler(200_000);
    body.extend_from_slice(EICAR);
    let req = respmod(
        "avscan",
        "",
        RES_HDR,
        &chunks(&body.chunks(10_000).collect::<Vec<_>>(), "0\r\n\r\n"),
    );
    let (mut rd, mut wr) = c.stream.into_split();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = wr.write_all(&req).await;
        wr
    });
    let mut all = Vec::new();
    let mut chunk = vec![0u8; 65536];
    loop {
        use tokio::io::AsyncReadExt;
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = writer.await;
    assert!(all.starts_with(b"ICAP/1.0 200 OK\r\n"));
    // The echo never completes: no last chunk, so the client cannot deliver the file.
    assert!(!all.ends_with(b"\r\n0\r\n\r\n"));
    let j = server.journal().await;
    assert_eq!(j[0].fault.as_deref(), Some("echo_aborted"));
    assert_eq!(j[0].threat.as_deref(), Some("Eicar-Test-Signature"));
}
