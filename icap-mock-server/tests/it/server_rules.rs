//! The server-side rules (issue 7, class 5): every broken request gets its status at once
//! and the connection closes; a head that trickles in past the whole-head deadline gets
//! `408`; no number from a peer or a configuration panics the mock.
//!
//! The framing rows run on the real clock with timeouts far longer than the bound they
//! assert, so a mock that waits for bytes an offset promised fails them.

use std::time::Duration;

use icap_mock_server::MockServer;
use icap_mock_server::config::ConfigFile;
use icap_proto::Method;
use tokio::io::AsyncWriteExt;

use crate::support::*;

/// Far longer than any answer may take.
const PATIENT: Duration = Duration::from_secs(30);
/// How fast a status must come back.
const FAST: Duration = Duration::from_secs(2);

async fn patient_server() -> MockServer {
    MockServer::builder()
        .idle_timeout(PATIENT)
        .header_read_timeout(PATIENT)
        .start()
        .await
}

/// Sends `bytes` and returns what came back until the close, and how long it took. Fails
/// the test if the server keeps the connection open past `FAST` (bounded at 5 s).
async fn answer_and_close(server: &MockServer, bytes: &[u8]) -> (Vec<u8>, Duration) {
    let mut c = Conn::open(server.addr()).await;
    let started = std::time::Instant::now();
    c.send(bytes).await;
    let (got, _) = tokio::time::timeout(Duration::from_secs(5), c.read_to_close())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no answer and no close within 5 s for {:?}",
                String::from_utf8_lossy(bytes)
            )
        });
    (got, started.elapsed())
}

async fn assert_status_fast(server: &MockServer, bytes: &[u8], status: u16) {
    let (got, took) = answer_and_close(server, bytes).await;
    let want = format!("ICAP/1.0 {status} ");
    assert!(
        got.starts_with(want.as_bytes()),
        "{:?}\n  -> {:?}",
        String::from_utf8_lossy(bytes),
        String::from_utf8_lossy(&got)
    );
    assert!(
        got.windows(19).any(|w| w == b"Connection: close\r\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        took < FAST,
        "{status} took {took:?} for {:?}",
        String::from_utf8_lossy(bytes)
    );
}

/// A RESPMOD whose `Encapsulated` says `res-body` starts at `res_body`, whatever the heads
/// really are.
fn respmod_claiming(res_body: &str, body: &[u8]) -> Vec<u8> {
    let req_hdr = b"GET /f HTTP/1.1\r\nHost: files\r\n\r\n";
    let mut out = format!(
        "RESPMOD icap://127.0.0.1/avscan ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: req-hdr=0, res-hdr={}, res-body={res_body}\r\n\r\n",
        req_hdr.len()
    )
    .into_bytes();
    out.extend_from_slice(req_hdr);
    out.extend_from_slice(RES_HDR);
    out.extend_from_slice(body);
    out
}

#[tokio::test]
async fn encapsulated_offset_past_the_head_is_400_at_once() {
    let server = patient_server().await;
    // The heads end at 32 + 60 bytes; the offset promises 1 000 more.
    assert_status_fast(
        &server,
        &respmod_claiming("1000", b"5\r\nhello\r\n0\r\n\r\n"),
        400,
    )
    .await;
    // The same with the largest offset a u64 holds.
    assert_status_fast(
        &server,
        &respmod_claiming("18446744073709551615", b"5\r\nhello\r\n0\r\n\r\n"),
        400,
    )
    .await;
}

#[tokio::test]
async fn ieof_on_a_chunk_that_is_not_the_last_is_400() {
    let server = patient_server().await;
    let req = respmod(
        "avscan",
        "Preview: 5\r\n",
        RES_HDR,
        b"5; ieof\r\nhello\r\n0; ieof\r\n\r\n",
    );
    assert_status_fast(&server, &req, 400).await;
}

#[tokio::test]
async fn obs_fold_in_a_request_is_400() {
    let server = patient_server().await;
    assert_status_fast(
        &server,
        b"OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\nHost: 127.0.0.1\r\nX-Folded: one\r\n two\r\n\r\n",
        400,
    )
    .await;
    let req = respmod(
        "avscan",
        "X-Client-IP: 10.0.0.1\r\n\t10.0.0.2\r\n",
        RES_HDR,
        &one_chunk(b"x"),
    );
    assert_status_fast(&server, &req, 400).await;
}

#[tokio::test]
async fn request_line_rules_400_501_505() {
    let server = patient_server().await;
    // HTTP/1.1 is not an ICAP version at all.
    assert_status_fast(
        &server,
        &respmod("avscan", "", RES_HDR, &one_chunk(b"x"))
            .splitn(2, |&b| b == b'\n')
            .enumerate()
            .flat_map(|(i, part)| {
                if i == 0 {
                    b"RESPMOD icap://127.0.0.1/avscan HTTP/1.1\r\n".to_vec()
                } else {
                    part.to_vec()
                }
            })
            .collect::<Vec<u8>>(),
        400,
    )
    .await;
    assert_status_fast(
        &server,
        b"OPTIONS icap://127.0.0.1/avscan HTTP/1.0\r\nHost: x\r\n\r\n",
        400,
    )
    .await;
    // An ICAP version this server does not speak.
    assert_status_fast(
        &server,
        b"OPTIONS icap://127.0.0.1/avscan ICAP/2.0\r\nHost: x\r\n\r\n",
        505,
    )
    .await;
    // A method ICAP does not have.
    assert_status_fast(
        &server,
        b"FROB icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n\r\n",
        501,
    )
    .await;
}

#[tokio::test]
async fn every_framing_error_answers_a_status_and_closes() {
    let server = patient_server().await;
    let rows: Vec<(&str, Vec<u8>, u16)> = vec![
        ("garbage", b"\x00\x01\x02\xff\r\n\r\n".to_vec(), 400),
        (
            "no Encapsulated",
            b"RESPMOD icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "Preview too big for a u64",
            respmod(
                "avscan",
                "Preview: 99999999999999999999999\r\n",
                RES_HDR,
                &one_chunk(b"x"),
            ),
            400,
        ),
        (
            "chunk size too big for a u64",
            respmod(
                "avscan",
                "",
                RES_HDR,
                b"ffffffffffffffffffffffff\r\nx\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "chunk size not hex",
            respmod("avscan", "", RES_HDR, b"zz\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        (
            "more preview than announced",
            respmod(
                "avscan",
                "Preview: 2\r\n",
                RES_HDR,
                b"5\r\nhello\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "two Encapsulated",
            b"OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\nEncapsulated: null-body=0\r\nEncapsulated: null-body=0\r\n\r\n".to_vec(),
            400,
        ),
    ];
    for (what, bytes, status) in rows {
        eprintln!("row: {what}");
        assert_status_fast(&server, &bytes, status).await;
    }
}

#[tokio::test]
async fn a_message_cut_short_by_the_client_is_400_not_silence() {
    let server = patient_server().await;
    // Half a head, then the client closes its side.
    let mut c = Conn::open(server.addr()).await;
    c.send(b"RESPMOD icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n")
        .await;
    c.stream.shutdown().await.unwrap();
    let started = std::time::Instant::now();
    let (got, _) = tokio::time::timeout(Duration::from_secs(5), c.read_to_close())
        .await
        .expect("closed");
    assert!(
        got.starts_with(b"ICAP/1.0 400 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(started.elapsed() < FAST);
    // Half a body.
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod("avscan", "Allow: 204\r\n", RES_HDR, b"a\r\nhel"))
        .await;
    c.stream.shutdown().await.unwrap();
    let (got, _) = tokio::time::timeout(Duration::from_secs(5), c.read_to_close())
        .await
        .expect("closed");
    assert!(
        got.starts_with(b"ICAP/1.0 400 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let j = server.journal().await;
    assert_eq!(j.last().and_then(|t| t.status), Some(400));
    assert!(!j.last().unwrap().complete);
}

#[tokio::test(start_paused = true)]
async fn a_trickled_head_gets_408_at_the_whole_head_deadline() {
    let server = MockServer::builder()
        .header_read_timeout(Duration::from_secs(2))
        .idle_timeout(PATIENT)
        .start()
        .await;
    let stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    // A byte every 100 ms: each read comes well within the idle timeout, but the head never
    // ends (slowloris).
    let trickle = tokio::spawn(async move {
        let head = b"RESPMOD icap://127.0.0.1/avscan ICAP/1.0\r\nHost: 127.0.0.1\r\nX-Pad: ";
        for &b in head.iter().chain(std::iter::repeat(&b'a')) {
            if wr.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let started = tokio::time::Instant::now();
    let mut got = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut rd, &mut got)
        .await
        .ok();
    let took = started.elapsed();
    trickle.abort();
    assert!(
        got.starts_with(b"ICAP/1.0 408 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(3),
        "408 after {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn silence_inside_a_body_gets_408_at_the_idle_timeout() {
    let server = MockServer::builder()
        .idle_timeout(Duration::from_secs(5))
        .start()
        .await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod("avscan", "Allow: 204\r\n", RES_HDR, b"5\r\nhel"))
        .await;
    let started = tokio::time::Instant::now();
    let (got, _) = c.read_to_close().await;
    assert!(
        got.starts_with(b"ICAP/1.0 408 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_head_within_the_deadline_is_served() {
    let server = MockServer::builder()
        .header_read_timeout(Duration::from_secs(2))
        .start()
        .await;
    let mut c = Conn::open(server.addr()).await;
    let req = respmod("avscan", "Allow: 204\r\n", RES_HDR, &one_chunk(b"x"));
    for piece in req.chunks(40) {
        c.send(piece).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
}

#[tokio::test]
async fn huge_configured_timeouts_and_delays_do_not_panic() {
    let server = MockServer::builder()
        .idle_timeout(Duration::MAX)
        .header_read_timeout(Duration::MAX)
        .trigger_delay(Duration::MAX)
        .start()
        .await;
    let mut c = Conn::open(server.addr()).await;
    c.send(b"OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(c.answer(Method::Options).await.status(), 200);
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(b"x"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
    // `.slow` sleeps for the (endless) trigger delay: the connection stays open and silent
    // instead of dying with its task.
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\n",
        "/a/report.slow",
        &one_chunk(b"x"),
    ))
    .await;
    assert!(c.silent_for(Duration::from_millis(500)).await);
    // `never_answer` waits for the (endless) idle timeout the same way.
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\n",
        "/a/report.timeout",
        &one_chunk(b"x"),
    ))
    .await;
    assert!(c.silent_for(Duration::from_millis(500)).await);
    // And a body marker asking for a delay of u64::MAX milliseconds.
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(b"ICAP-MOCK-FAULT:delay:18446744073709551615 "),
    ))
    .await;
    assert!(c.silent_for(Duration::from_millis(500)).await);
    // Still serving.
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(b"x"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
}

#[tokio::test]
async fn extreme_numbers_in_the_config_file_do_not_panic() {
    let toml = r#"
header_read_timeout_ms = 18446744073709551615
idle_timeout_ms = 18446744073709551615
trigger_delay_ms = 18446744073709551615
journal_limit = 18446744073709551615
journal_bytes = 18446744073709551615
body_capture = 18446744073709551615

[limits]
max_head = 18446744073709551615
max_preview = 18446744073709551615
max_body = 18446744073709551615

[[service]]
name = "avscan"
preview = 9223372036854775807
max_connections = 4294967295
options_ttl_secs = 18446744073709551615
echo_threshold = 18446744073709551615

[[rule]]
when = { filename = "*.iso" }
then = { fault = "delay", delay_ms = 18446744073709551615 }

[[rule]]
when = { filename = "*.gz" }
then = { fault = "slow_body", delay_ms = 18446744073709551615 }

[[rule]]
when = { filename = "*.tar" }
then = { fault = "delay_continue", delay_ms = 18446744073709551615 }
"#;
    let file = ConfigFile::from_toml(toml).unwrap();
    let builder = MockServer::builder().config(file.settings().unwrap());
    let server = builder.start().await;
    let mut c = Conn::open(server.addr()).await;
    c.send(b"OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n\r\n")
        .await;
    let a = c.answer(Method::Options).await;
    assert_eq!(a.status(), 200);
    assert_eq!(
        a.header("Options-TTL").as_deref(),
        Some("18446744073709551615")
    );
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(b"x"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
    for (name, preview) in [("a.iso", ""), ("a.gz", ""), ("a.tar", "Preview: 1\r\n")] {
        let mut c = Conn::open(server.addr()).await;
        let body = if preview.is_empty() {
            one_chunk(b"xy")
        } else {
            chunks(&[b"x"], "0\r\n\r\n")
        };
        c.send(&respmod_with_url(
            "avscan",
            preview,
            &format!("/d/{name}"),
            &body,
        ))
        .await;
        // slow_body sends its head, then waits forever before the body; the others send
        // nothing. Either way the connection must still be open.
        let mut buf = [0u8; 4096];
        let open = match tokio::time::timeout(
            Duration::from_millis(500),
            tokio::io::AsyncReadExt::read(&mut c.stream, &mut buf),
        )
        .await
        {
            Err(_) => true,
            Ok(Ok(n)) => n > 0 && c.silent_for(Duration::from_millis(300)).await,
            Ok(Err(_)) => false,
        };
        assert!(open, "{name}: the connection died");
    }
}

#[tokio::test]
async fn legal_answers_keep_the_connection_and_off_rule_verdicts_close_it() {
    use icap_mock_server::{Mock, Reply, matchers::filename};
    let server = patient_server().await;
    Mock::given(filename("*.odd"))
        .respond_with(Reply::status(299))
        .mount(&server)
        .await;
    let mut c = Conn::open(server.addr()).await;
    // Legal answers: 204 with Allow: 204, 204 to a preview, a 200 echo, an infection; the
    // exchange lets the connection be reused after each.
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(b"x"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
    c.send(&respmod(
        "avscan",
        "Preview: 4\r\n",
        RES_HDR,
        b"4\r\nabcd\r\n0; ieof\r\n\r\n",
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
    c.send(&respmod("avscan", "", RES_HDR, &one_chunk(b"x")))
        .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 200);
    c.send(&respmod("avscan", "", RES_HDR, &one_chunk(EICAR)))
        .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 200);
    // A rule asked for a status ICAP does not define: it goes out as asked, but the
    // exchange does not let the connection carry another request after it.
    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\n",
        "/a/b.odd",
        &one_chunk(b"x"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 299);
    let (rest, _) = tokio::time::timeout(FAST, c.read_to_close())
        .await
        .expect("closed after the off-rule answer");
    assert!(rest.is_empty());
}

#[tokio::test]
async fn a_rule_istag_replaces_the_servers_instead_of_doubling_it() {
    use icap_mock_server::{Mock, Reply, matchers::any};
    let server = patient_server().await;
    Mock::given(any())
        .respond_with(Reply::clean().with_header("ISTag", "\"changed-1\""))
        .mount(&server)
        .await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(b"x"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 204);
    assert_eq!(a.head.headers.get_all("ISTag").count(), 1, "{}", a.text());
    assert_eq!(a.head.istag(), Some(&b"changed-1"[..]));
}

#[tokio::test]
async fn journal_limit_zero_in_the_config_file_turns_the_journal_off() {
    let file = ConfigFile::from_toml("journal_limit = 0\n").unwrap();
    let server = MockServer::builder()
        .config(file.settings().unwrap())
        .start()
        .await;
    let mut c = Conn::open(server.addr()).await;
    for body in [&b"x"[..], icap_mock_server::EICAR] {
        let status = c.scan("avscan", body).await.status();
        assert_eq!(status == 204, body == b"x", "clean answered 204, EICAR not");
    }
    assert!(server.journal().await.is_empty());
    assert_eq!(server.journal_bytes(), 0);
}
