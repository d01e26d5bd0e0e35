//! wiremock's precedence (priority, then first mounted), scoped mocks, and the message of
//! unmet expectations.

use icap_mock_server::matchers::{any, filename};
use icap_mock_server::{DEFAULT_PRIORITY, Mock, MockServer, Reply};
use icap_proto::{Method, verdict};

use crate::support::*;

async fn threat(server: &MockServer, path: &str) -> Option<String> {
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod_with_url("avscan", "", path, &one_chunk(b"x")))
        .await;
    let a = c.answer(Method::Respmod).await;
    verdict::threats(&a.head).first().map(|t| t.name.clone())
}

#[tokio::test]
async fn a_lower_priority_number_wins_over_mount_order() {
    assert_eq!(DEFAULT_PRIORITY, 5);
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(Reply::infected("Default"))
        .mount(&server)
        .await;
    Mock::given(filename("*.exe"))
        .respond_with(Reply::infected("Urgent"))
        .with_priority(1)
        .mount(&server)
        .await;
    // Priority 9 loses to the default 5 whatever the order: it never applies.
    Mock::given(any())
        .respond_with(Reply::infected("Fallback"))
        .with_priority(9)
        .expect(0)
        .mount(&server)
        .await;
    // Equal to the default priority, mounted later: loses to "Default".
    Mock::given(filename("*.exe"))
        .respond_with(Reply::infected("Later"))
        .expect(0)
        .mount(&server)
        .await;
    assert_eq!(threat(&server, "/a.exe").await.as_deref(), Some("Urgent"));
    assert_eq!(threat(&server, "/a.txt").await.as_deref(), Some("Default"));
    server.verify().await;
}

#[tokio::test]
async fn a_spent_schedule_falls_through_to_the_next_by_precedence() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(Reply::infected("Low"))
        .with_priority(7)
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(Reply::infected("Once"))
        .with_priority(2)
        .times(1)
        .mount(&server)
        .await;
    assert_eq!(threat(&server, "/a").await.as_deref(), Some("Once"));
    assert_eq!(threat(&server, "/a").await.as_deref(), Some("Low"));
}

#[tokio::test]
async fn a_scoped_mock_answers_until_its_guard_drops() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(Reply::infected("Outer"))
        .mount(&server)
        .await;
    {
        let guard = Mock::given(any())
            .respond_with(Reply::infected("Scoped"))
            .with_priority(1)
            .expect(1)
            .mount_as_scoped(&server)
            .await;
        assert_eq!(threat(&server, "/a").await.as_deref(), Some("Scoped"));
        let got = guard.received_requests().await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].filename().as_deref(), Some("a"));
    }
    assert_eq!(threat(&server, "/a").await.as_deref(), Some("Outer"));
}

#[tokio::test]
#[should_panic(expected = "mock 'scoped' (#1) expected exactly 2 request(s), got 1 (matched 1)")]
async fn a_scoped_mock_checks_its_expectation_when_dropped() {
    let server = MockServer::start().await;
    let guard = Mock::given(any())
        .respond_with(Reply::clean())
        .expect(2)
        .named("scoped")
        .mount_as_scoped(&server)
        .await;
    let _ = threat(&server, "/a").await;
    drop(guard);
}

/// The message `verify()` panics with, for the requests of the test below.
async fn unmet_message() -> String {
    let server = MockServer::start().await;
    Mock::given(filename("*.zip"))
        .respond_with(Reply::infected("Zip"))
        .named("zips")
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(filename("*.iso"))
        .respond_with(Reply::clean())
        .named("isos")
        .expect(1)
        .mount(&server)
        .await;
    let mut c = Conn::open(server.addr()).await;
    c.send(
        b"OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\nEncapsulated: null-body=0\r\n\r\n",
    )
    .await;
    assert_eq!(c.answer(Method::Options).await.status(), 200);
    for path in ["/a.zip", "/b.exe"] {
        c.send(&respmod_with_url("avscan", "", path, &one_chunk(b"x")))
            .await;
        c.answer(Method::Respmod).await;
    }
    let scans = server.journal_scans().await;
    assert_eq!(scans.len(), 2);
    assert_eq!(scans[0].method(), Method::Respmod);
    assert_eq!(scans[0].service(), "avscan");
    assert_eq!(scans[0].filename().as_deref(), Some("a.zip"));
    assert_eq!(scans[0].icap_header("host").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        scans[0].http_header("host").as_deref(),
        Some("files.example")
    );
    assert!(server.journal().await[0].is_options());
    // The server moves into the task: it is dropped while the task unwinds, so its own
    // check on drop stays quiet.
    let task = tokio::spawn(async move { server.verify().await });
    let panic = task.await.expect_err("verify panics").into_panic();
    panic
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_else(|| panic!("a formatted panic message"))
}

#[tokio::test]
async fn unmet_expectations_list_the_requests_by_the_mock_that_answered() {
    let msg = unmet_message().await;
    assert_eq!(
        msg,
        "icap-mock-server: unmet expectations:\n\
         \x20 mock 'zips' (#1) expected exactly 2 request(s), got 1 (matched 1)\n\
         \x20 mock 'isos' (#2) expected exactly 1 request(s), got 0 (matched 0)\n\
         received requests (3):\n\
         \x20 mock 'zips' (#1):\n\
         \x20   #2 RESPMOD avscan a.zip -> 200\n\
         \x20 unmatched:\n\
         \x20   #1 OPTIONS avscan - -> 200\n\
         \x20   #3 RESPMOD avscan b.exe -> 200"
    );
}

#[tokio::test]
#[should_panic(expected = "no requests were received")]
async fn unmet_expectations_say_when_nothing_came() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(Reply::clean())
        .expect(1)
        .mount(&server)
        .await;
}
