//! Proxy, record, replay and transport faults, against a tiny upstream made of another
//! in-process mock.

use std::time::Duration;

use icap_mock_server::proxy::{Upstream, UpstreamFailure};
use icap_mock_server::record::{RecordMeta, RecordSettings};
use icap_mock_server::replay::{Replay, Unmatched};
use icap_mock_server::transport_faults::{Cut, TransportFaults};
use icap_mock_server::{Fault, Mock, MockServer, Reply, matchers};
use icap_proto::Method;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::support::*;

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

async fn proxy_to(upstream: &MockServer) -> MockServer {
    MockServer::builder()
        .upstream(Upstream::parse(&upstream.url()).unwrap())
        .start()
        .await
}

/// The requests of the proof: clean, EICAR, preview, no preview, REQMOD, big echo.
fn requests() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let big = vec![b'a'; 300 * 1024];
    vec![
        (
            "eicar",
            vec![respmod_with_url(
                "avscan",
                "Allow: 204\r\n",
                "/eicar.com",
                &chunks(&[EICAR], "0\r\n\r\n"),
            )],
        ),
        (
            "clean-204",
            vec![respmod_with_url(
                "avscan",
                "Allow: 204\r\n",
                "/clean.txt",
                &chunks(&[b"hello world"], "0\r\n\r\n"),
            )],
        ),
        (
            "clean-echo-big",
            vec![respmod_with_url(
                "avscan",
                "",
                "/big.bin",
                &chunks(&[&big], "0\r\n\r\n"),
            )],
        ),
        (
            "preview-ieof",
            vec![respmod_with_url(
                "avscan",
                "Allow: 204\r\nPreview: 1024\r\n",
                "/small.txt",
                &chunks(&[b"tiny"], "0; ieof\r\n\r\n"),
            )],
        ),
        (
            "reqmod-eicar",
            vec![reqmod(
                "avscan",
                "Allow: 204\r\n",
                "/upload",
                &chunks(&[EICAR], "0\r\n\r\n"),
            )],
        ),
    ]
}

#[tokio::test]
async fn proxied_answers_match_the_upstream_byte_for_byte() {
    let upstream = MockServer::start().await;
    let proxy = proxy_to(&upstream).await;
    for (name, parts) in requests() {
        let method = if name.starts_with("reqmod") {
            Method::Reqmod
        } else {
            Method::Respmod
        };
        let mut direct = Conn::open(upstream.addr()).await;
        let mut via = Conn::open(proxy.addr()).await;
        for p in &parts {
            direct.send(p).await;
            via.send(p).await;
        }
        let a = direct.answer(method).await;
        let b = via.answer(method).await;
        assert_eq!(a.status(), b.status(), "{name}");
        assert!(a.body == b.body, "{name}: bodies differ");
        // icap-proto encodes both: the proxy passes the upstream's head on unchanged (and
        // the whole answer when it has no body to re-chunk).
        assert_eq!(a.head, b.head, "{name}");
        if a.body.is_empty() {
            assert_eq!(a.text(), b.text(), "{name}");
        }
        // Keep-alive through the proxy: a second request on the same connection.
        for p in &parts {
            via.send(p).await;
        }
        assert_eq!(
            via.answer(method).await.status(),
            a.status(),
            "{name} again"
        );
    }
    // Every proxied request reached the upstream (twice for the proxy, once direct).
    assert_eq!(upstream.journal().await.len(), requests().len() * 3);
}

#[tokio::test]
async fn preview_and_100_continue_pass_through() {
    let upstream = MockServer::start().await;
    let proxy = proxy_to(&upstream).await;
    let mut c = Conn::open(proxy.addr()).await;
    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\nPreview: 4\r\n",
        "/doc.txt",
        &chunks(&[b"abcd"], "0\r\n\r\n"),
    ))
    .await;
    let cont = c.answer(Method::Respmod).await;
    assert_eq!(cont.status(), 100);
    c.send(&chunks(&[b"efgh", EICAR], "0\r\n\r\n")).await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 200);
    assert!(a.header("X-Infection-Found").is_some(), "{}", a.text());
    let j = upstream.journal().await;
    assert!(j[0].continued && j[0].preview == Some(4));
    assert_eq!(j[0].body_len, 8 + EICAR.len() as u64);

    // A verdict inside the preview: EICAR in the preview itself, no 100.
    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\nPreview: 100\r\n",
        "/e.com",
        &chunks(&[EICAR], "0\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 200, "{}", a.text());
    assert!(a.header("X-Infection-Found").is_some());
}

#[tokio::test]
async fn options_and_istag_come_from_the_upstream() {
    let upstream = MockServer::start().await;
    let proxy = proxy_to(&upstream).await;
    let mut c = Conn::open(proxy.addr()).await;
    c.send(b"OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n\r\n")
        .await;
    let a = c.answer(Method::Options).await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.header("ISTag"), Some(format!("\"{}\"", upstream.istag())));
    // Keep-alive after a request without a body.
    c.send(b"OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(c.answer(Method::Options).await.status(), 200);
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&[b"x"], "0\r\n\r\n"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
}

#[tokio::test]
async fn a_matching_rule_answers_without_forwarding() {
    let upstream = MockServer::start().await;
    let proxy = proxy_to(&upstream).await;
    Mock::given(matchers::filename("*.zip"))
        .respond_with(Reply::error(500, "password_protected"))
        .mount(&proxy)
        .await;
    let mut c = Conn::open(proxy.addr()).await;
    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\n",
        "/a.zip",
        &chunks(&[b"PK"], "0\r\n\r\n"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 500);
    assert!(upstream.journal().await.is_empty());
    // Anything else still goes upstream.
    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\n",
        "/a.txt",
        &chunks(&[b"x"], "0\r\n\r\n"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
    assert_eq!(upstream.journal().await.len(), 1);
}

fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("icap://127.0.0.1:{port}/avscan")
}

#[tokio::test]
async fn a_dead_upstream_gives_502_or_a_close() {
    let proxy = MockServer::builder()
        .upstream(Upstream::parse(&closed_port_url()).unwrap())
        .start()
        .await;
    let mut c = Conn::open(proxy.addr()).await;
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&[b"x"], "0\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 502);
    assert!(
        a.header("X-Mock-Upstream-Error")
            .is_some_and(|v| v.contains("connect"))
    );
    let j = proxy.journal().await;
    assert!(
        j[0].fault
            .as_deref()
            .is_some_and(|f| f.starts_with("upstream"))
    );

    let proxy = MockServer::builder()
        .upstream(
            Upstream::parse(&closed_port_url())
                .unwrap()
                .with_failure(UpstreamFailure::Close),
        )
        .start()
        .await;
    let mut c = Conn::open(proxy.addr()).await;
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&[b"x"], "0\r\n\r\n"),
    ))
    .await;
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), c.stream.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&rest));
}

#[tokio::test]
async fn a_silent_upstream_gives_504() {
    let upstream = MockServer::start().await;
    Mock::given(matchers::any())
        .respond_with(Fault::never_answer())
        .mount(&upstream)
        .await;
    let proxy = MockServer::builder()
        .upstream(
            Upstream::parse(&upstream.url())
                .unwrap()
                .with_timeout(Duration::from_millis(300)),
        )
        .start()
        .await;
    let mut c = Conn::open(proxy.addr()).await;
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&[b"x"], "0\r\n\r\n"),
    ))
    .await;
    let a = tokio::time::timeout(Duration::from_secs(5), c.answer(Method::Respmod))
        .await
        .expect("answered in time");
    assert_eq!(a.status(), 504);
}

/// [`metas`] once the first recording is there (bounded: 50 rounds of 20 ms). A tape is
/// written after the answer, so a test that just got its answer gives it a moment.
async fn metas_when_written(dir: &std::path::Path) -> Vec<(RecordMeta, Vec<u8>, Vec<u8>)> {
    for _ in 0..50 {
        let recs = metas(dir);
        if !recs.is_empty() {
            return recs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    metas(dir)
}

fn metas(dir: &std::path::Path) -> Vec<(RecordMeta, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let m: RecordMeta = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            let req = std::fs::read(p.with_extension("req")).unwrap();
            let res = std::fs::read(p.with_extension("res")).unwrap();
            out.push((m, req, res));
        }
    }
    out.sort_by(|a, b| a.0.stem.cmp(&b.0.stem));
    out
}

#[tokio::test]
async fn recording_keeps_exact_bytes_and_digests_not_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockServer::start().await;
    let proxy = MockServer::builder()
        .upstream(Upstream::parse(&upstream.url()).unwrap())
        .record(RecordSettings::new(dir.path()))
        .start()
        .await;
    let mut c = Conn::open(proxy.addr()).await;
    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\n",
        "/eicar.com",
        &chunks(&[EICAR], "0\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    drop(c);
    let recs = metas_when_written(dir.path()).await;
    assert_eq!(recs.len(), 1);
    let (m, req, res) = &recs[0];
    assert_eq!(res, &a.raw, "the recorded answer is what the client got");
    assert_eq!(m.body_sha256, hex(&Sha256::digest(EICAR)));
    assert_eq!(m.body_len, EICAR.len() as u64);
    assert!(!m.body_kept);
    assert_eq!(req.len() as u64, m.request_head_len);
    assert!(req.starts_with(format!("RESPMOD {} ICAP/1.0\r\n", upstream.url()).as_bytes()));
    assert!(
        !req.windows(EICAR.len()).any(|w| w == EICAR),
        "no body by default"
    );
    assert_eq!(m.status, Some(200));
    assert_eq!(m.istag, Some(format!("\"{}\"", upstream.istag())));
    assert_eq!(m.filename.as_deref(), Some("eicar.com"));
    assert_eq!(m.upstream, upstream.url());

    // Opt-in: bodies up to a size are kept.
    let dir2 = tempfile::tempdir().unwrap();
    let proxy = MockServer::builder()
        .upstream(Upstream::parse(&upstream.url()).unwrap())
        .record(RecordSettings::new(dir2.path()).keep_bodies_up_to(1024))
        .start()
        .await;
    let mut c = Conn::open(proxy.addr()).await;
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&[EICAR], "0\r\n\r\n"),
    ))
    .await;
    c.answer(Method::Respmod).await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let recs = metas(dir2.path());
    assert!(recs[0].0.body_kept);
    assert!(recs[0].1.windows(EICAR.len()).any(|w| w == EICAR));
}

#[tokio::test]
async fn replay_answers_like_the_recorded_server_with_it_gone() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockServer::start().await;
    let upstream_istag = upstream.istag();
    let mut originals = Vec::new();
    {
        let proxy = MockServer::builder()
            .upstream(Upstream::parse(&upstream.url()).unwrap())
            .record(RecordSettings::new(dir.path()))
            .start()
            .await;
        let mut c = Conn::open(proxy.addr()).await;
        c.send(b"OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n\r\n")
            .await;
        c.answer(Method::Options).await;
        for (name, parts) in requests() {
            let method = if name.starts_with("reqmod") {
                Method::Reqmod
            } else {
                Method::Respmod
            };
            for p in &parts {
                c.send(p).await;
            }
            originals.push((name, method, parts, c.answer(method).await));
        }
        drop(c);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(upstream);

    let replay = Replay::load(dir.path()).unwrap();
    assert_eq!(replay.len(), requests().len() + 1);
    let server = MockServer::builder().replay(replay).start().await;
    let mut c = Conn::open(server.addr()).await;
    c.send(b"OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n\r\n")
        .await;
    let o = c.answer(Method::Options).await;
    assert_eq!(o.header("ISTag"), Some(format!("\"{upstream_istag}\"")));
    for (name, method, parts, original) in &originals {
        for p in parts {
            c.send(p).await;
        }
        let a = c.answer(*method).await;
        assert_eq!(a.status(), original.status(), "{name}");
        assert!(a.body == original.body, "{name}: bodies differ");
        assert_eq!(
            a.header("X-Infection-Found"),
            original.header("X-Infection-Found"),
            "{name}"
        );
        assert_eq!(a.header("ISTag"), original.header("ISTag"), "{name}");
    }
    // A body never recorded: a clear error, not a silent clean.
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&[b"never seen"], "0\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 500);
    assert!(
        a.header("X-Mock-Replay-Error")
            .is_some_and(|v| v.contains("no recording"))
    );

    // Configurable: a close instead.
    let server = MockServer::builder()
        .replay(
            Replay::load(dir.path())
                .unwrap()
                .with_unmatched(Unmatched::Close),
        )
        .start()
        .await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&[b"never seen"], "0\r\n\r\n"),
    ))
    .await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.stream.read_to_end(&mut rest)).await;
    assert!(rest.is_empty());
}

#[tokio::test]
async fn replay_matches_by_file_name_when_the_body_differs() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockServer::start().await;
    {
        let proxy = MockServer::builder()
            .upstream(Upstream::parse(&upstream.url()).unwrap())
            .record(RecordSettings::new(dir.path()))
            .start()
            .await;
        let mut c = Conn::open(proxy.addr()).await;
        c.send(&respmod_with_url(
            "avscan",
            "Allow: 204\r\n",
            "/report.pdf",
            &chunks(&[EICAR], "0\r\n\r\n"),
        ))
        .await;
        assert_eq!(c.answer(Method::Respmod).await.status(), 200);
        drop(c);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let server = MockServer::builder()
        .replay(Replay::load(dir.path()).unwrap())
        .start()
        .await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\n",
        "/report.pdf",
        &chunks(&[b"other bytes"], "0\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 200);
    assert!(a.header("X-Infection-Found").is_some());
}

async fn faulty_proxy(upstream: &MockServer, faults: TransportFaults) -> MockServer {
    MockServer::builder()
        .upstream(
            Upstream::parse(&upstream.url())
                .unwrap()
                .with_transport_faults(faults),
        )
        .start()
        .await
}

async fn read_all(c: &mut Conn) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), c.stream.read_to_end(&mut out)).await;
    out
}

#[tokio::test]
async fn transport_cut_down_ends_the_answer_after_n_bytes() {
    let upstream = MockServer::start().await;
    for how in [Cut::Close, Cut::Reset] {
        let proxy = faulty_proxy(&upstream, TransportFaults::default().cut_down(12, how)).await;
        let mut c = Conn::open(proxy.addr()).await;
        c.send(&respmod(
            "avscan",
            "Allow: 204\r\n",
            RES_HDR,
            &chunks(&[b"x"], "0\r\n\r\n"),
        ))
        .await;
        let got = read_all(&mut c).await;
        assert_eq!(got, b"ICAP/1.0 204", "{how:?}");
    }
}

#[tokio::test]
async fn transport_cut_up_ends_the_connection_while_uploading() {
    let upstream = MockServer::start().await;
    let proxy = faulty_proxy(&upstream, TransportFaults::default().cut_up(40, Cut::Close)).await;
    let mut c = Conn::open(proxy.addr()).await;
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&[b"x"], "0\r\n\r\n"),
    ))
    .await;
    assert!(read_all(&mut c).await.is_empty());
    assert!(upstream.journal().await.iter().all(|t| t.status.is_none()));
}

#[tokio::test]
async fn transport_slicing_keeps_the_answer_intact() {
    let upstream = MockServer::start().await;
    let proxy = faulty_proxy(&upstream, TransportFaults::default().slice(3)).await;
    let mut c = Conn::open(proxy.addr()).await;
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&[EICAR], "0\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 200);
    assert!(a.header("X-Infection-Found").is_some());
}

#[tokio::test]
async fn transport_latency_bandwidth_and_slow_close_take_their_time() {
    let upstream = MockServer::start().await;
    let body = vec![b'z'; 2000];
    let request = respmod("avscan", "", RES_HDR, &chunks(&[&body], "0\r\n\r\n"));

    let proxy = faulty_proxy(
        &upstream,
        TransportFaults::default().latency(Duration::from_millis(300), Duration::from_millis(50)),
    )
    .await;
    let mut c = Conn::open(proxy.addr()).await;
    let t = std::time::Instant::now();
    c.send(&request).await;
    c.answer(Method::Respmod).await;
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );

    // 2 KB echo at 5 KB/s: at least about 0.4 s.
    let proxy = faulty_proxy(&upstream, TransportFaults::default().bandwidth_down(5000)).await;
    let mut c = Conn::open(proxy.addr()).await;
    let t = std::time::Instant::now();
    c.send(&request).await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.body, body);
    assert!(
        t.elapsed() >= Duration::from_millis(350),
        "{:?}",
        t.elapsed()
    );

    // Upload at 5 KB/s: the same.
    let proxy = faulty_proxy(&upstream, TransportFaults::default().bandwidth_up(5000)).await;
    let mut c = Conn::open(proxy.addr()).await;
    let t = std::time::Instant::now();
    c.send(&request).await;
    c.answer(Method::Respmod).await;
    assert!(
        t.elapsed() >= Duration::from_millis(350),
        "{:?}",
        t.elapsed()
    );

    // Slow close: the answer comes at once, the close 400 ms later.
    let proxy = faulty_proxy(
        &upstream,
        TransportFaults::default().slow_close(Duration::from_millis(400)),
    )
    .await;
    let mut c = Conn::open(proxy.addr()).await;
    let t = std::time::Instant::now();
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\nConnection: close\r\n",
        RES_HDR,
        &chunks(&[b"x"], "0\r\n\r\n"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
    let answered = t.elapsed();
    assert!(read_all(&mut c).await.is_empty());
    assert!(
        t.elapsed() >= answered + Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn transport_timeout_forwards_nothing_and_closes_after_it() {
    let upstream = MockServer::start().await;
    let proxy = faulty_proxy(
        &upstream,
        TransportFaults::default().timeout(Duration::from_millis(300)),
    )
    .await;
    let mut c = Conn::open(proxy.addr()).await;
    let t = std::time::Instant::now();
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&[b"x"], "0\r\n\r\n"),
    ))
    .await;
    assert!(read_all(&mut c).await.is_empty());
    assert!(t.elapsed() >= Duration::from_millis(250));
    assert!(upstream.journal().await.is_empty());
}

#[tokio::test]
async fn verify_dialect_finds_where_a_dialect_differs_from_the_recording() {
    use icap_mock_server::{Dialect, ServiceConfig};
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockServer::builder()
        .service(ServiceConfig::new("avscan").dialect(Dialect::Symantec))
        .start()
        .await;
    {
        let proxy = MockServer::builder()
            .upstream(Upstream::parse(&upstream.url()).unwrap())
            .record(RecordSettings::new(dir.path()))
            .start()
            .await;
        let mut c = Conn::open(proxy.addr()).await;
        for body in [EICAR, b"clean"] {
            c.send(&respmod_with_url(
                "avscan",
                "Allow: 204\r\n",
                "/f.bin",
                &chunks(&[body], "0\r\n\r\n"),
            ))
            .await;
            c.answer(Method::Respmod).await;
        }
        drop(c);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let same = icap_mock_server::verify::verify_dialect(dir.path(), Dialect::Symantec)
        .await
        .unwrap();
    assert_eq!(same.compared, 2);
    assert!(same.is_match(), "{same}");
    let other = icap_mock_server::verify::verify_dialect(dir.path(), Dialect::CIcap)
        .await
        .unwrap();
    assert!(!other.is_match());
    assert!(
        other
            .differences
            .iter()
            .any(|d| d.contains("status: recorded 201, dialect 200")),
        "{other}"
    );
}

#[tokio::test]
async fn a_rule_can_answer_in_a_recorded_dialect() {
    use icap_mock_server::config::ConfigFile;
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockServer::start().await;
    {
        let proxy = MockServer::builder()
            .upstream(Upstream::parse(&upstream.url()).unwrap())
            .record(RecordSettings::new(dir.path()))
            .start()
            .await;
        let mut c = Conn::open(proxy.addr()).await;
        c.send(&respmod_with_url(
            "avscan",
            "Allow: 204\r\n",
            "/vendor.exe",
            &chunks(&[EICAR], "0\r\n\r\n"),
        ))
        .await;
        c.answer(Method::Respmod).await;
        drop(c);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let toml = format!(
        "[[rule]]\nwhen = {{ filename = \"*.exe\" }}\nthen = {{ dialect = \"recorded:{}\" }}\n",
        dir.path().display()
    );
    let file = ConfigFile::from_toml(&toml).unwrap();
    let builder = MockServer::builder().config(file.settings().unwrap());
    let server = builder.start().await;
    let mut c = Conn::open(server.addr()).await;
    // A clean body, but the rule says: answer *.exe the way the recorded server did.
    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\n",
        "/vendor.exe",
        &chunks(&[b"MZ clean"], "0\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.header("ISTag"), Some(format!("\"{}\"", upstream.istag())));
    assert!(a.header("X-Infection-Found").is_some());
    // Other files: the built-in answer.
    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\n",
        "/a.txt",
        &chunks(&[b"x"], "0\r\n\r\n"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
    // A dialect that is neither built in nor a recording is refused.
    let bad = ConfigFile::from_toml("[[rule]]\nthen = { dialect = \"nope\" }\n").unwrap();
    assert!(bad.settings().is_err());
}

async fn scan_clean(proxy: &MockServer) -> u16 {
    scan_clean_at(proxy.addr()).await
}

/// [`scan_clean`] on a new connection to `addr` (for spawned tasks).
async fn scan_clean_at(addr: std::net::SocketAddr) -> u16 {
    let mut c = Conn::open(addr).await;
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&[b"hello"], "0\r\n\r\n"),
    ))
    .await;
    c.answer(Method::Respmod).await.status()
}

async fn upstream_peers(upstream: &MockServer) -> std::collections::HashSet<std::net::SocketAddr> {
    upstream
        .journal()
        .await
        .iter()
        .filter_map(|t| t.peer)
        .collect()
}

#[tokio::test]
async fn sequential_proxied_scans_reuse_one_upstream_connection() {
    let upstream = MockServer::start().await;
    let up = Upstream::parse(&upstream.url()).unwrap();
    let proxy = MockServer::builder().upstream(up.clone()).start().await;
    for _ in 0..6 {
        // A new client connection each time: the upstream one is the pool's.
        assert_eq!(scan_clean(&proxy).await, 204);
    }
    assert_eq!(upstream.journal().await.len(), 6);
    assert_eq!(upstream_peers(&upstream).await.len(), 1);
    assert_eq!(up.connections_opened(), 1);
    assert_eq!(up.idle_connections(), 1);

    // Without a pool, one connection per request.
    let upstream = MockServer::start().await;
    let up = Upstream::parse(&upstream.url()).unwrap().with_max_idle(0);
    let proxy = MockServer::builder().upstream(up.clone()).start().await;
    for _ in 0..3 {
        assert_eq!(scan_clean(&proxy).await, 204);
    }
    assert_eq!(upstream_peers(&upstream).await.len(), 3);
    assert_eq!(up.connections_opened(), 3);
    assert_eq!(up.idle_connections(), 0);
}

#[tokio::test]
async fn a_connection_that_saw_a_transport_fault_is_not_reused() {
    let upstream = MockServer::start().await;
    let up = Upstream::parse(&upstream.url())
        .unwrap()
        .with_transport_faults(TransportFaults::default().cut_down(12, Cut::Close));
    let proxy = MockServer::builder().upstream(up.clone()).start().await;
    for _ in 0..3 {
        let mut c = Conn::open(proxy.addr()).await;
        c.send(&respmod(
            "avscan",
            "Allow: 204\r\n",
            RES_HDR,
            &chunks(&[b"x"], "0\r\n\r\n"),
        ))
        .await;
        assert_eq!(read_all(&mut c).await, b"ICAP/1.0 204");
    }
    assert_eq!(up.connections_opened(), 3);
    assert_eq!(up.idle_connections(), 0);
    assert_eq!(upstream_peers(&upstream).await.len(), 3);
}

#[tokio::test]
async fn an_upstream_error_answer_with_close_is_not_reused() {
    // The upstream says `Connection: close` on its 500: the exchange
    // forbids reuse, so the next request opens a new connection.
    let upstream = MockServer::start().await;
    Mock::given(matchers::any())
        .respond_with(Reply::error(500, "broken").with_header("Connection", "close"))
        .times(1)
        .mount(&upstream)
        .await;
    let up = Upstream::parse(&upstream.url()).unwrap();
    let proxy = MockServer::builder().upstream(up.clone()).start().await;
    assert_eq!(scan_clean(&proxy).await, 500);
    assert_eq!(scan_clean(&proxy).await, 204);
    assert_eq!(scan_clean(&proxy).await, 204);
    assert_eq!(up.connections_opened(), 2);
}

/// Reads one ICAP head (up to the empty line) from `s`; false on EOF.
async fn read_head(s: &mut tokio::net::TcpStream) -> bool {
    icap_test_support::try_read_until(s, b"\r\n\r\n")
        .await
        .is_some()
}

#[tokio::test]
async fn a_stale_pooled_connection_is_retried_once_on_a_fresh_one() {
    use tokio::io::AsyncWriteExt;
    const ANSWER: &[u8] = b"ICAP/1.0 200 OK\r\nMethods: RESPMOD\r\nISTag: \"raw\"\r\nEncapsulated: null-body=0\r\n\r\n";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // The first connection answers one OPTIONS, then reads the next head and closes
    // without a word (an upstream that timed the idle connection out just then); the
    // second answers everything.
    let accepts = tokio::spawn(async move {
        let (mut a, _) = listener.accept().await.unwrap();
        assert!(read_head(&mut a).await);
        a.write_all(ANSWER).await.unwrap();
        assert!(read_head(&mut a).await);
        drop(a);
        let (mut b, _) = listener.accept().await.unwrap();
        let mut served = 0;
        while read_head(&mut b).await {
            b.write_all(ANSWER).await.unwrap();
            served += 1;
        }
        served
    });
    let up = Upstream::parse(&format!("icap://127.0.0.1:{port}/avscan")).unwrap();
    let proxy = MockServer::builder().upstream(up.clone()).start().await;
    let mut c = Conn::open(proxy.addr()).await;
    for _ in 0..3 {
        c.send(b"OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n\r\n")
            .await;
        let a = c.answer(Method::Options).await;
        assert_eq!(a.status(), 200);
        assert_eq!(a.header("ISTag").as_deref(), Some("\"raw\""));
    }
    drop(c);
    drop(proxy);
    assert_eq!(up.connections_opened(), 2);
    // Dropping the pool's connection ends the second upstream connection.
    drop(up);
    let served = tokio::time::timeout(Duration::from_secs(10), accepts)
        .await
        .expect("the raw upstream finishes")
        .unwrap();
    assert_eq!(served, 2);
}

async fn proxy_from_toml(toml: &str) -> MockServer {
    let file = icap_mock_server::config::ConfigFile::from_toml(toml).unwrap();
    let builder = MockServer::builder().config(file.settings().unwrap());
    builder.start().await
}

#[tokio::test]
async fn transport_faults_and_the_pool_come_from_the_configuration_file() {
    let upstream = MockServer::start().await;
    let url = upstream.url();
    // The table form, with the faults as a table.
    let proxy = proxy_from_toml(&format!(
        "[[service]]\nname = \"avscan\"\n[service.upstream]\nurl = \"{url}\"\nmax_idle = 0\n\
         [service.upstream.faults]\ncut_down = \"12:close\"\nlatency = 0\n"
    ))
    .await;
    for _ in 0..2 {
        let mut c = Conn::open(proxy.addr()).await;
        c.send(&respmod(
            "avscan",
            "Allow: 204\r\n",
            RES_HDR,
            &chunks(&[b"x"], "0\r\n\r\n"),
        ))
        .await;
        assert_eq!(read_all(&mut c).await, b"ICAP/1.0 204");
    }
    // The text form, and the flat key of a [[service]].
    for toml in [
        format!(
            "[[service]]\nname = \"avscan\"\n[service.upstream]\nurl = \"{url}\"\nfaults = \"cut_down=12\"\n"
        ),
        format!(
            "[[service]]\nname = \"avscan\"\nupstream = \"{url}\"\nupstream_faults = \"cut_down=12:reset\"\n"
        ),
    ] {
        let proxy = proxy_from_toml(&toml).await;
        let mut c = Conn::open(proxy.addr()).await;
        c.send(&respmod(
            "avscan",
            "Allow: 204\r\n",
            RES_HDR,
            &chunks(&[b"x"], "0\r\n\r\n"),
        ))
        .await;
        assert_eq!(read_all(&mut c).await, b"ICAP/1.0 204", "{toml}");
    }
    // Pool settings: max_idle = 0 above opened one connection per scan; the default keeps one.
    let before = upstream_peers(&upstream).await.len();
    let pooled = proxy_from_toml(&format!(
        "[[service]]\nname = \"avscan\"\n[service.upstream]\nurl = \"{url}\"\n"
    ))
    .await;
    for _ in 0..3 {
        assert_eq!(scan_clean(&pooled).await, 204);
    }
    assert_eq!(upstream_peers(&upstream).await.len(), before + 1);
    assert_eq!(before, 4);

    // Unknown names and smuggled items are refused.
    for bad in [
        "[service.upstream.faults]\nlatncy = 5\n",
        "[service.upstream.faults]\ncut_down = \"1,latency=5\"\n",
        "[service.upstream.faults]\ncut_down = \"1:sideways\"\n",
    ] {
        let toml =
            format!("[[service]]\nname = \"avscan\"\n[service.upstream]\nurl = \"{url}\"\n{bad}");
        let file = icap_mock_server::config::ConfigFile::from_toml(&toml);
        let applied = file.map(|f| f.settings().map(|_| ()));
        assert!(!matches!(applied, Ok(Ok(()))), "{bad}");
    }
}

/// A proxy with a `body_contains("SECRET")` rule answering `infected Rule.Secret`.
async fn proxy_with_body_rule(upstream: &MockServer, hold: Option<u64>) -> MockServer {
    let mut up = Upstream::parse(&upstream.url()).unwrap();
    if let Some(h) = hold {
        up = up.with_hold_limit(h);
    }
    let proxy = MockServer::builder().upstream(up).start().await;
    Mock::given(matchers::body_contains(b"SECRET"))
        .respond_with(Reply::infected("Rule.Secret"))
        .mount(&proxy)
        .await;
    proxy
}

fn threat_of(a: &Answer) -> Option<String> {
    icap_proto::verdict::threats(&a.head)
        .first()
        .map(|t| t.name.clone())
}

#[tokio::test]
async fn a_body_rule_answers_a_proxied_request_without_forwarding_it() {
    let upstream = MockServer::start().await;
    let proxy = proxy_with_body_rule(&upstream, None).await;
    let mut c = Conn::open(proxy.addr()).await;
    // No preview: the pattern in the middle of the body.
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&[b"aaaa", b"xxSECRETxx", b"bbbb"], "0\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(
        threat_of(&a).as_deref(),
        Some("Rule.Secret"),
        "{}",
        a.text()
    );
    // Not matching: forwarded whole, the upstream's answer comes back.
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&[b"aaaa", EICAR, b"bbbb"], "0\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(threat_of(&a).as_deref(), Some("Eicar-Test-Signature"));
    let up = upstream.journal().await;
    assert_eq!(up.len(), 1, "only the second request went upstream");
    assert_eq!(up[0].body_len, 8 + EICAR.len() as u64);
    let mine = proxy.journal().await;
    assert_eq!(mine[1].body_len, up[0].body_len);
    assert_eq!(mine[1].body_sha256, up[0].body_sha256);
    assert!(mine.iter().all(|t| t.note.is_none()));
}

#[tokio::test]
async fn a_body_rule_sees_past_the_preview_on_the_proxied_path() {
    let upstream = MockServer::start().await;
    let proxy = proxy_with_body_rule(&upstream, None).await;
    let mut c = Conn::open(proxy.addr()).await;
    // The pattern after the preview: the mock continues the client itself, then its
    // rule answers.
    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\nPreview: 4\r\n",
        "/doc.txt",
        &chunks(&[b"abcd"], "0\r\n\r\n"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 100);
    c.send(&chunks(&[b"..SECRET.."], "0\r\n\r\n")).await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(threat_of(&a).as_deref(), Some("Rule.Secret"));
    assert!(upstream.journal().await.is_empty());

    // Not matching after the preview: forwarded; the upstream's own 100 Continue is not
    // passed on (the client had the mock's), its verdict is.
    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\nPreview: 4\r\n",
        "/doc.txt",
        &chunks(&[b"abcd"], "0\r\n\r\n"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 100);
    c.send(&chunks(&[b"efgh", EICAR], "0\r\n\r\n")).await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 200, "{}", a.text());
    assert_eq!(threat_of(&a).as_deref(), Some("Eicar-Test-Signature"));
    let up = upstream.journal().await;
    assert_eq!(up.len(), 1);
    assert!(up[0].continued && up[0].preview == Some(4));
    assert_eq!(up[0].body_len, 8 + EICAR.len() as u64);
    // The connection is still in step: a clean one after it.
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&[b"fine"], "0\r\n\r\n"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
}

#[tokio::test]
async fn past_the_hold_limit_a_proxied_request_is_forwarded_and_the_journal_says_so() {
    let upstream = MockServer::start().await;
    let proxy = proxy_with_body_rule(&upstream, Some(16)).await;
    let mut c = Conn::open(proxy.addr()).await;
    let filler = vec![b'z'; 64];
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &chunks(&[&filler, b"SECRET"], "0\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    // The upstream (no such rule) finds it clean.
    assert_eq!(a.status(), 204);
    let up = upstream.journal().await;
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].body_len, 70);
    let mine = proxy.journal().await;
    assert_eq!(mine[0].body_len, 70);
    let note = mine[0].note.as_deref().expect("a note");
    assert!(note.contains("hold limit 16"), "{note}");
    assert_eq!(mine[0].to_json()["note"], note);
}

/// A client with as many scans in flight as icap-client's default `max_connections` (32)
/// finds that many upstream connections in the pool on its next round: the default
/// `max_idle` keeps them all (it kept 8 before, so every round opened 24 fresh ones).
#[tokio::test]
async fn the_default_pool_keeps_a_round_of_32_concurrent_scans_connected() {
    let upstream = MockServer::start().await;
    // Each scan waits at the upstream, so the 32 of a round are in flight together.
    Mock::given(matchers::any())
        .respond_with(Fault::delay(Duration::from_millis(100)))
        .mount(&upstream)
        .await;
    let up = Upstream::parse(&upstream.url()).unwrap();
    let proxy = MockServer::builder().upstream(up.clone()).start().await;
    for round in 1..=2 {
        let scans: Vec<_> = (0..32)
            .map(|_| tokio::spawn(scan_clean_at(proxy.addr())))
            .collect();
        for s in scans {
            assert_eq!(s.await.unwrap(), 204, "round {round}");
        }
        assert_eq!(up.connections_opened(), 32, "after round {round}");
        assert_eq!(up.idle_connections(), 32, "after round {round}");
    }
}

/// `body_digest(false)` holds on the proxied path too: the journal gets no SHA-256 (the
/// body is still counted), unless a recording needs the digest for its metadata.
#[tokio::test]
async fn a_proxy_without_body_digests_hashes_only_for_a_recording() {
    let upstream = MockServer::start().await;
    let proxy = MockServer::builder()
        .body_digest(false)
        .upstream(Upstream::parse(&upstream.url()).unwrap())
        .start()
        .await;
    assert_eq!(scan_clean(&proxy).await, 204);
    let j = proxy.journal().await;
    assert_eq!(j.len(), 1, "{j:?}");
    assert_eq!(j[0].body_len, 5);
    assert_eq!(j[0].body_sha256, "", "no digest asked for");

    let dir = tempfile::tempdir().unwrap();
    let proxy = MockServer::builder()
        .body_digest(false)
        .upstream(Upstream::parse(&upstream.url()).unwrap())
        .record(RecordSettings::new(dir.path()))
        .start()
        .await;
    assert_eq!(scan_clean(&proxy).await, 204);
    let recs = metas_when_written(dir.path()).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].0.body_sha256, hex(&Sha256::digest(b"hello")));
}
