//! Each vendor dialect: the exact places an infection (and a clean answer) shows up.

use icap_mock_server::{Dialect, MockServer, ServiceConfig};
use icap_proto::Method;
use icap_proto::verdict::{self, ThreatSource};

use crate::support::*;

async fn infected_and_clean(dialect: Dialect) -> (Answer, Answer) {
    let server = MockServer::builder()
        .service(ServiceConfig::new("av").dialect(dialect))
        .start()
        .await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod_with_url(
        "av",
        "Allow: 204\r\n",
        "/x/eicar.com",
        &one_chunk(EICAR),
    ))
    .await;
    let infected = c.answer(Method::Respmod).await;
    c.send(&respmod(
        "av",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(b"clean"),
    ))
    .await;
    let clean = c.answer(Method::Respmod).await;
    (infected, clean)
}

#[tokio::test]
async fn c_icap() {
    let (a, clean) = infected_and_clean(Dialect::CIcap).await;
    assert_eq!(a.status(), 200);
    assert!(
        a.header("X-Infection-Found")
            .unwrap()
            .contains("Threat=Eicar-Test-Signature;")
    );
    assert!(
        a.text().contains(
            "X-Violations-Found: 1\r\n\teicar.com\r\n\tEicar-Test-Signature\r\n\t0\r\n\t0\r\n"
        ),
        "{}",
        a.text()
    );
    assert_eq!(
        a.head.http_response.as_ref().unwrap().version(),
        b"HTTP/1.0"
    );
    assert_eq!(
        verdict::threats(&a.head)[0].source,
        ThreatSource::InfectionFound
    );
    assert_eq!(clean.status(), 204);
}

#[tokio::test]
async fn symantec() {
    let (a, clean) = infected_and_clean(Dialect::Symantec).await;
    assert_eq!(a.status(), 201);
    // As in the public capture of Symantec Protection Engine 8.0 (Baekalfen/ICAP-avscan#19).
    assert_eq!(
        a.header("X-Infection-Found").as_deref(),
        Some("Type=0; Resolution=1; Threat=EICAR Test String;")
    );
    assert!(
        a.text().contains(
            "X-Violations-Found: 1\r\n\teicar.com\r\n\tEICAR Test String\r\n\t1001\r\n\t2\r\n"
        ),
        "{}",
        a.text()
    );
    assert_eq!(a.head.http_response.as_ref().unwrap().status(), 403);
    let threats = verdict::threats(&a.head);
    // The reader joins both headers into one threat: the name and resolution of
    // X-Infection-Found, the file and problem id of X-Violations-Found.
    assert_eq!(threats.len(), 1, "{threats:?}");
    let t = &threats[0];
    assert_eq!(
        (
            t.name.as_str(),
            t.source,
            t.file.as_deref(),
            t.problem_id.as_deref()
        ),
        (
            "EICAR Test String",
            ThreatSource::InfectionFound,
            Some("eicar.com"),
            Some("1001")
        )
    );
    assert_eq!(clean.status(), 204);
}

#[tokio::test]
async fn kaspersky() {
    let (a, clean) = infected_and_clean(Dialect::Kaspersky).await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.header("X-Virus-ID").as_deref(), Some("EICAR-Test-File"));
    assert_eq!(a.head.http_response.as_ref().unwrap().status(), 403);
    assert_eq!(verdict::threats(&a.head)[0].source, ThreatSource::VirusId);
    assert_eq!(clean.status(), 204);
    assert_eq!(clean.header("X-Virus-ID").as_deref(), Some("no threats"));
    assert!(verdict::threats(&clean.head).is_empty());
}

#[tokio::test]
async fn sophos() {
    let (a, clean) = infected_and_clean(Dialect::Sophos).await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.header("X-Virus-ID").as_deref(), Some("EICAR-AV-Test"));
    let res = a.head.http_response.as_ref().unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers.get("X-Blocked").is_some());
    assert_eq!(
        res.headers.get("X-Blocked-Reason").unwrap().as_bytes(),
        b"EICAR-AV-Test"
    );
    assert_eq!(clean.status(), 204);
    assert!(clean.header("X-Virus-ID").is_none());
}

#[tokio::test]
async fn mcafee() {
    let (a, clean) = infected_and_clean(Dialect::McAfee).await;
    assert_eq!(a.status(), 200);
    for h in ["X-Virus-ID", "X-Infection-Found", "X-Violations-Found"] {
        assert!(a.header(h).is_none(), "{h}");
    }
    let res = a.head.http_response.as_ref().unwrap();
    assert_eq!((res.status(), res.reason()), (403, &b"VirusFound"[..]));
    let t = &verdict::threats(&a.head)[0];
    assert_eq!(t.source, ThreatSource::HttpBlock);
    assert!(String::from_utf8_lossy(&a.body).contains("EICAR test file"));
    assert_eq!(clean.status(), 204);
}

#[tokio::test]
async fn plain() {
    let (a, clean) = infected_and_clean(Dialect::Plain).await;
    assert_eq!(a.status(), 200);
    assert_eq!(
        a.header("X-Virus-ID").as_deref(),
        Some("Eicar-Test-Signature")
    );
    assert!(a.header("X-Infection-Found").is_none());
    assert!(
        a.text().contains("Encapsulated: res-hdr=0, null-body="),
        "{}",
        a.text()
    );
    assert!(a.body.is_empty());
    assert_eq!(clean.status(), 204);
}

#[tokio::test]
async fn a_verdict_can_override_the_dialect() {
    use icap_mock_server::{Mock, Reply, matchers::any};
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            Reply::infected("Other.Shape")
                .with_dialect(Dialect::Kaspersky)
                .with_header("X-Extra", "1"),
        )
        .mount(&server)
        .await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod("avscan", "", RES_HDR, &one_chunk(b"x")))
        .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.header("X-Virus-ID").as_deref(), Some("Other.Shape"));
    assert_eq!(a.header("X-Extra").as_deref(), Some("1"));
}

/// The raw bytes of a clean `204`, a `500` error and a `503`, in `dialect`.
async fn bodyless_answers(dialect: Dialect) -> (String, [Vec<u8>; 3]) {
    use icap_mock_server::{Mock, Reply, matchers};
    let server = MockServer::builder()
        .service(ServiceConfig::new("av").dialect(dialect))
        .start()
        .await;
    Mock::given(matchers::filename("*.zip"))
        .respond_with(Reply::error(500, "password_protected"))
        .mount(&server)
        .await;
    Mock::given(matchers::filename("*.busy"))
        .respond_with(Reply::status(503))
        .mount(&server)
        .await;
    let istag = server.istag();
    let mut c = Conn::open(server.addr()).await;
    let mut raw = Vec::new();
    for path in ["/clean.txt", "/secret.zip", "/later.busy"] {
        c.send(&respmod_with_url(
            "av",
            "Allow: 204\r\n",
            path,
            &one_chunk(b"clean"),
        ))
        .await;
        raw.push(c.answer(Method::Respmod).await.raw);
    }
    (istag, raw.try_into().expect("three answers"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn bodyless_answers_are_framed_per_dialect() {
    // c-icap 0.5.10, captured from the real server by .ci/cicap-server.sh:
    //   ICAP/1.0 204 Unmodified\r\nServer: C-ICAP/0.5.10\r\nConnection: keep-alive\r\nISTag: "..."\r\n\r\n
    // (its 400 and 404 carry no Encapsulated either).
    let (tag, [ok, err, busy]) = bodyless_answers(Dialect::CIcap).await;
    assert_eq!(
        text(&ok),
        format!(
            "ICAP/1.0 204 Unmodified\r\nServer: C-ICAP/0.5.10\r\nConnection: keep-alive\r\nISTag: \"{tag}\"\r\n\r\n"
        )
    );
    assert_eq!(
        text(&err),
        format!(
            "ICAP/1.0 500 Server Error\r\nISTag: \"{tag}\"\r\nX-Error-Code: password_protected\r\n\r\n"
        )
    );
    assert_eq!(
        text(&busy),
        format!("ICAP/1.0 503 Service Overloaded\r\nISTag: \"{tag}\"\r\n\r\n")
    );

    // McAfee sends no Encapsulated on its 204.
    let (tag, [ok, _, _]) = bodyless_answers(Dialect::McAfee).await;
    assert_eq!(
        text(&ok),
        format!("ICAP/1.0 204 No Content\r\nISTag: \"{tag}\"\r\n\r\n")
    );

    // ESET (and RFC 3507 §4.4.1 for the dialects without a capture): null-body=0.
    for d in [
        Dialect::Eset,
        Dialect::Symantec,
        Dialect::Kaspersky,
        Dialect::Sophos,
        Dialect::Plain,
    ] {
        let (tag, [ok, err, busy]) = bodyless_answers(d).await;
        let clean_extra = if d == Dialect::Kaspersky {
            "X-Virus-ID: no threats\r\n"
        } else {
            ""
        };
        assert_eq!(
            text(&ok),
            format!(
                "ICAP/1.0 204 No Content\r\nISTag: \"{tag}\"\r\n{clean_extra}Encapsulated: null-body=0\r\n\r\n"
            ),
            "{d:?}"
        );
        assert_eq!(
            text(&err),
            format!(
                "ICAP/1.0 500 Server Error\r\nISTag: \"{tag}\"\r\nX-Error-Code: password_protected\r\nEncapsulated: null-body=0\r\n\r\n"
            ),
            "{d:?}"
        );
        assert_eq!(
            text(&busy),
            format!(
                "ICAP/1.0 503 Service Overloaded\r\nISTag: \"{tag}\"\r\nEncapsulated: null-body=0\r\n\r\n"
            ),
            "{d:?}"
        );
    }
}

#[tokio::test]
async fn eset_reports_an_infection_as_its_capture_shows() {
    // nextcloud/files_antivirus issue 303 (ESET Server Security for Linux, c-icap-client -v):
    // 200 OK, ISTag, Encapsulated: res-hdr=0, res-body=70, X-Infection-Found
    // (Resolution=0), X-Virus-ID, X-Response-Info: Blocked, X-Response-Description,
    // then HTTP/1.1 403 Forbidden with Content-Type: text/html and Content-Length: 0.
    let (a, clean) = infected_and_clean(Dialect::Eset).await;
    let tag = a.header("ISTag").unwrap();
    let want = format!(
        "ICAP/1.0 200 OK\r\nISTag: {tag}\r\nEncapsulated: res-hdr=0, res-body=70\r\n\
         X-Infection-Found: Type=0; Resolution=0; Threat=Eicar;\r\nX-Virus-ID: Eicar\r\n\
         X-Response-Info: Blocked\r\nX-Response-Description: Gel\u{f6}scht\r\n\r\n\
         HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n0\r\n\r\n"
    );
    assert_eq!(text(&a.raw), want);
    let threats = verdict::threats(&a.head);
    assert_eq!(threats[0].source, ThreatSource::InfectionFound);
    assert_eq!(clean.status(), 204);
    assert_eq!(clean.header("Encapsulated").as_deref(), Some("null-body=0"));
}
