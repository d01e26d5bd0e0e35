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
    let mut c = Conn::open(&server).await;
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
    use icap_mock_server::{Mock, Verdict, matchers::any};
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            Verdict::infected("Other.Shape")
                .with_dialect(Dialect::Kaspersky)
                .with_header("X-Extra", "1"),
        )
        .mount(&server)
        .await;
    let mut c = Conn::open(&server).await;
    c.send(&respmod("avscan", "", RES_HDR, &one_chunk(b"x")))
        .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.header("X-Virus-ID").as_deref(), Some("Other.Shape"));
    assert_eq!(a.header("X-Extra").as_deref(), Some("1"));
}
