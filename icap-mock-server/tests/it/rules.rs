//! wiremock-style rules: matchers, responders, precedence, schedules, expectations.

use icap_mock_server::matchers::{
    any, body_contains, body_size, filename, http_header, icap_header, method, not, service,
    url_path_contains,
};
use icap_mock_server::{Fault, Mock, MockServer, Reaction, Reply, Request, ServiceConfig};
use icap_proto::{Method, verdict};

use crate::support::*;

async fn threat_of(c: &mut Conn, req: &[u8]) -> Option<String> {
    c.send(req).await;
    let a = c.answer(Method::Respmod).await;
    verdict::threats(&a.head).first().map(|t| t.name.clone())
}

#[tokio::test]
async fn head_matchers() {
    let server = MockServer::builder()
        .service(ServiceConfig::new("avscan"))
        .service(ServiceConfig::new("other"))
        .start()
        .await;
    Mock::given(icap_header("X-Client-IP", "10.9.9.9"))
        .respond_with(Reply::infected("ByClientIp"))
        .mount(&server)
        .await;
    Mock::given(http_header("Content-Type", "application/x-evil"))
        .respond_with(Reply::infected("ByHttpHeader"))
        .mount(&server)
        .await;
    Mock::given(url_path_contains("/quarantine/"))
        .respond_with(Reply::infected("ByPath"))
        .mount(&server)
        .await;
    Mock::given(filename("*.bad"))
        .and(method(Method::Respmod))
        .respond_with(Reply::infected("ByName"))
        .mount(&server)
        .await;
    Mock::given(service("other"))
        .respond_with(Reply::infected("ByService"))
        .mount(&server)
        .await;
    let mut c = Conn::open(server.addr()).await;
    let body = one_chunk(b"x");
    assert_eq!(
        threat_of(
            &mut c,
            &respmod("avscan", "X-Client-IP: 10.9.9.9\r\n", RES_HDR, &body)
        )
        .await
        .as_deref(),
        Some("ByClientIp")
    );
    let evil = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-evil\r\n\r\n";
    assert_eq!(
        threat_of(&mut c, &respmod("avscan", "", evil, &body))
            .await
            .as_deref(),
        Some("ByHttpHeader")
    );
    assert_eq!(
        threat_of(
            &mut c,
            &respmod_with_url("avscan", "", "/quarantine/a.txt", &body)
        )
        .await
        .as_deref(),
        Some("ByPath")
    );
    assert_eq!(
        threat_of(
            &mut c,
            &respmod_with_url("avscan", "", "/x/file.BAD", &body)
        )
        .await
        .as_deref(),
        Some("ByName")
    );
    assert_eq!(
        threat_of(&mut c, &respmod("other", "", RES_HDR, &body))
            .await
            .as_deref(),
        Some("ByService")
    );
    assert_eq!(
        threat_of(&mut c, &respmod("avscan", "Allow: 204\r\n", RES_HDR, &body)).await,
        None
    );
}

#[tokio::test]
async fn content_disposition_gives_the_file_name() {
    let server = MockServer::start().await;
    Mock::given(filename("*.docm"))
        .respond_with(Reply::infected("Macro"))
        .mount(&server)
        .await;
    let mut c = Conn::open(server.addr()).await;
    let res =
        b"HTTP/1.1 200 OK\r\nContent-Disposition: attachment; filename=\"Q3 report.docm\"\r\n\r\n";
    assert_eq!(
        threat_of(&mut c, &respmod("avscan", "", res, &one_chunk(b"x")))
            .await
            .as_deref(),
        Some("Macro")
    );
}

#[tokio::test]
async fn body_matchers_work_across_chunks_and_after_the_preview() {
    let server = MockServer::start().await;
    Mock::given(body_contains(b"NEEDLE-IN-HAYSTACK"))
        .respond_with(Reply::infected("ByBody"))
        .mount(&server)
        .await;
    Mock::given(body_size(10_000..))
        .respond_with(Reply::error(500, "too_big"))
        .mount(&server)
        .await;
    let mut c = Conn::open(server.addr()).await;
    // The needle straddles the end of the preview and the next chunk.
    c.send(&respmod(
        "avscan",
        "Preview: 20\r\n",
        RES_HDR,
        &chunks(&[b"0123456789NEEDLE-IN"], "0\r\n\r\n"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 100);
    c.send(&chunks(&[b"-HAY", b"STACK tail"], "0\r\n\r\n"))
        .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(verdict::threats(&a.head)[0].name, "ByBody");

    c.send(&respmod("avscan", "", RES_HDR, &one_chunk(&filler(12_000))))
        .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.header("X-Error-Code").as_deref(), Some("too_big"));

    // Found inside the preview: answered without 100 Continue (once no rule of higher
    // precedence waits for the rest of the body).
    server.reset().await;
    Mock::given(body_contains(b"NEEDLE-IN-HAYSTACK"))
        .respond_with(Reply::infected("ByBody"))
        .mount(&server)
        .await;
    c.send(&respmod(
        "avscan",
        "Preview: 100\r\n",
        RES_HDR,
        &chunks(&[b"..NEEDLE-IN-HAYSTACK.."], "0\r\n\r\n"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 200);
    assert_eq!(verdict::threats(&a.head)[0].name, "ByBody");
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(b"fine"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
}

#[tokio::test]
async fn head_rules_answer_right_after_the_preview() {
    let server = MockServer::start().await;
    Mock::given(filename("*.exe"))
        .respond_with(Reply::infected("Exe"))
        .mount(&server)
        .await;
    Mock::given(filename("*.txt"))
        .respond_with(Reply::clean())
        .mount(&server)
        .await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod_with_url(
        "avscan",
        "Preview: 4\r\n",
        "/a.exe",
        &chunks(&[b"MZ.."], "0\r\n\r\n"),
    ))
    .await;
    assert_eq!(
        verdict::threats(&c.answer(Method::Respmod).await.head)[0].name,
        "Exe"
    );
    // A clean decision inside the preview is a 204 even without Allow: 204.
    c.send(&respmod_with_url(
        "avscan",
        "Preview: 4\r\n",
        "/a.txt",
        &chunks(&[b"abcd"], "0\r\n\r\n"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
}

#[tokio::test]
async fn closures_as_matchers_and_responders() {
    let server = MockServer::start().await;
    Mock::given(|req: &Request| req.body.len() == 3 && req.body_complete)
        .respond_with(|req: &Request| {
            Reply::infected(&format!(
                "Len{}From{}",
                req.body_len,
                req.icap_header("X-Client-IP").unwrap_or_default()
            ))
        })
        .mount(&server)
        .await;
    // Mounted second, so it needs a higher priority to win over the first for "abc".
    Mock::given(icap_header("X-Reaction", "fault"))
        .respond_with(|_: &Request| Reaction::Fault(Fault::garbage()))
        .with_priority(1)
        .mount(&server)
        .await;
    let mut c = Conn::open(server.addr()).await;
    assert_eq!(
        threat_of(
            &mut c,
            &respmod(
                "avscan",
                "X-Client-IP: 1.2.3.4\r\n",
                RES_HDR,
                &one_chunk(b"abc")
            )
        )
        .await
        .as_deref(),
        Some("Len3From1.2.3.4")
    );
    c.send(&respmod(
        "avscan",
        "X-Reaction: fault\r\n",
        RES_HDR,
        &one_chunk(b"abc"),
    ))
    .await;
    assert!(c.try_answer(Method::Respmod).await.is_err());
}

#[tokio::test]
async fn the_first_mounted_of_equal_priority_wins_and_not_inverts() {
    let server = MockServer::start().await;
    Mock::given(not(filename("*.keep")))
        .respond_with(Reply::infected("First"))
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(Reply::infected("Second"))
        .mount(&server)
        .await;
    let mut c = Conn::open(server.addr()).await;
    assert_eq!(
        threat_of(
            &mut c,
            &respmod_with_url("avscan", "", "/a.bin", &one_chunk(b"x"))
        )
        .await
        .as_deref(),
        Some("First")
    );
    assert_eq!(
        threat_of(
            &mut c,
            &respmod_with_url("avscan", "", "/a.keep", &one_chunk(b"x"))
        )
        .await
        .as_deref(),
        Some("Second")
    );
}

#[tokio::test]
async fn schedules_times_every_probability() {
    let server = MockServer::start().await;
    Mock::given(icap_header("X-T", "times"))
        .respond_with(Reply::infected("T"))
        .times(2)
        .mount(&server)
        .await;
    Mock::given(icap_header("X-T", "every"))
        .respond_with(Reply::infected("E"))
        .every(3)
        .mount(&server)
        .await;
    Mock::given(icap_header("X-T", "prob"))
        .respond_with(Reply::infected("P"))
        .probability(0.5, 42)
        .mount(&server)
        .await;
    let mut c = Conn::open(server.addr()).await;
    let mut run = async |tag: &str, n: usize| {
        let mut out = Vec::new();
        for _ in 0..n {
            let req = respmod(
                "avscan",
                &format!("X-T: {tag}\r\nAllow: 204\r\n"),
                RES_HDR,
                &one_chunk(b"x"),
            );
            out.push(threat_of(&mut c, &req).await.is_some());
        }
        out
    };
    assert_eq!(run("times", 4).await, [true, true, false, false]);
    assert_eq!(
        run("every", 6).await,
        [false, false, true, false, false, true]
    );
    let p1 = run("prob", 40).await;
    let hits = p1.iter().filter(|x| **x).count();
    assert!((8..=32).contains(&hits), "{hits}");
    // Same seed, same sequence.
    let server2 = MockServer::start().await;
    Mock::given(any())
        .respond_with(Reply::infected("P"))
        .probability(0.5, 42)
        .mount(&server2)
        .await;
    let mut c2 = Conn::open(server2.addr()).await;
    let mut p2 = Vec::new();
    for _ in 0..40 {
        p2.push(
            threat_of(
                &mut c2,
                &respmod("avscan", "Allow: 204\r\n", RES_HDR, &one_chunk(b"x")),
            )
            .await
            .is_some(),
        );
    }
    assert_eq!(p1, p2);
}

#[tokio::test]
async fn expectations_are_verified() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(Reply::clean())
        .expect(2)
        .named("two clean")
        .mount(&server)
        .await;
    let mut c = Conn::open(server.addr()).await;
    for _ in 0..2 {
        c.send(&respmod(
            "avscan",
            "Allow: 204\r\n",
            RES_HDR,
            &one_chunk(b"x"),
        ))
        .await;
        c.answer(Method::Respmod).await;
    }
    server.verify().await;
    let j = server.journal().await;
    assert!(j.iter().all(|t| t.rule.is_some()));
}

#[tokio::test]
#[should_panic(expected = "mock 'never hit' (#1) expected exactly 1 request(s), got 0")]
async fn unmet_expectations_panic_on_drop() {
    let server = MockServer::start().await;
    Mock::given(filename("*.nope"))
        .respond_with(Reply::clean())
        .expect(1)
        .named("never hit")
        .mount(&server)
        .await;
    drop(server);
}

#[tokio::test]
async fn ranges_as_expectations_and_reset() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(Reply::clean())
        .expect(1..=3)
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
    c.answer(Method::Respmod).await;
    server.verify().await;
    server.reset().await;
    assert!(server.journal().await.is_empty());
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(EICAR),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 200);
}
