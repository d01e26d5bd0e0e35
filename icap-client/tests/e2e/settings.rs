//! Every connection and scan setting, observed through the mock's journal.

use icap_client::{
    IdentityHeaders, Method, NotScannedReason, PreviewMode, ScanMeta, Uploader, UserType, Verdict,
};
use icap_mock_server::{Mock, MockServer, ServiceConfig, matchers::any};

use crate::common::{builder, client, count_options, eicar, respmods, write};

fn uploader() -> Uploader {
    Uploader::new("alice")
        .with_email("alice@example.com")
        .with_user_type(UserType::Guest)
        .with_groups(["sales", "emea"])
        .with_ip("192.0.2.7".parse().unwrap())
}

#[tokio::test]
async fn filecloud_identity_headers_arrive() {
    let server = MockServer::start().await;
    let c = client(&server);
    let meta = ScanMeta::new("a.txt").with_uploader(uploader());
    assert!(c.scan_bytes(&b"x"[..], &meta).await.verdict.is_clean());
    let j = server.journal().await;
    let t = respmods(&j)[0];
    assert_eq!(
        t.icap_header("X-FILECLOUD-USER-NAME").as_deref(),
        Some("alice")
    );
    assert_eq!(
        t.icap_header("X-FILECLOUD-USER-EMAIL").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(
        t.icap_header("X-FILECLOUD-USER-TYPE").as_deref(),
        Some("guest")
    );
    assert_eq!(
        t.icap_header("X-FILECLOUD-GROUP-NAMES").as_deref(),
        Some("sales,emea")
    );
    assert_eq!(t.icap_header("X-Client-IP").as_deref(), Some("192.0.2.7"));
}

#[tokio::test]
async fn common_identity_headers_and_extra_headers() {
    let server = MockServer::start().await;
    let c = builder(&server.url())
        .identity_headers(IdentityHeaders::common())
        .header("X-Tenant", "acme")
        .build()
        .unwrap();
    let meta = ScanMeta::new("a.txt")
        .with_uploader(uploader())
        .with_header("X-Request-Id", "42");
    assert!(c.scan_bytes(&b"x"[..], &meta).await.verdict.is_clean());
    let j = server.journal().await;
    let t = respmods(&j)[0];
    assert_eq!(t.icap_header("X-Client-Username").as_deref(), Some("alice"));
    assert_eq!(
        t.icap_header("X-Authenticated-User").as_deref(),
        Some("TG9jYWw6Ly9hbGljZQ==")
    );
    assert_eq!(t.icap_header("X-Tenant").as_deref(), Some("acme"));
    assert_eq!(t.icap_header("X-Request-Id").as_deref(), Some("42"));
    assert!(t.icap_header("X-FILECLOUD-USER-NAME").is_none());
}

#[tokio::test]
async fn one_switch_disables_all_identity_headers() {
    let server = MockServer::start().await;
    let c = builder(&server.url())
        .identity_headers(IdentityHeaders::disabled())
        .header("X-Tenant", "acme")
        .build()
        .unwrap();
    let meta = ScanMeta::new("a.txt")
        .with_uploader(uploader())
        .with_header("X-Request-Id", "42");
    assert!(c.scan_bytes(&b"x"[..], &meta).await.verdict.is_clean());
    let j = server.journal().await;
    let t = respmods(&j)[0];
    for h in [
        "X-FILECLOUD-USER-NAME",
        "X-FILECLOUD-USER-EMAIL",
        "X-FILECLOUD-USER-TYPE",
        "X-FILECLOUD-GROUP-NAMES",
        "X-Client-IP",
        "X-Tenant",
        "X-Request-Id",
    ] {
        assert!(t.icap_header(h).is_none(), "{h} was sent");
    }
}

#[tokio::test]
async fn crlf_in_identity_is_refused_and_nothing_is_sent() {
    let server = MockServer::start().await;
    let c = client(&server);
    let meta = ScanMeta::new("a.txt").with_uploader(Uploader::new("alice\r\nX-Evil: 1"));
    let report = c.scan_bytes(eicar(), &meta).await;
    let err = report.verdict.error().expect("failed");
    assert!(err.is_config(), "{err:?}");
    assert!(respmods(&server.journal().await).is_empty());
    // Static headers are checked when the client is built.
    assert!(
        builder(&server.url())
            .header("X-Evil", "a\nb")
            .build()
            .unwrap_err()
            .is_config()
    );
}

#[tokio::test]
async fn preview_from_options_with_continue() {
    let server = MockServer::builder()
        .service(ServiceConfig::new("avscan").preview(Some(4096)))
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let big = write(dir.path(), "big.bin", &vec![7u8; 100_000]);
    let r = client(&server).scan_file(&big, &ScanMeta::default()).await;
    assert!(r.verdict.is_clean(), "{r:?}");
    assert_eq!(r.preview, Some(4096));
    let j = server.journal().await;
    let t = respmods(&j)[0];
    assert_eq!(t.preview, Some(4096));
    assert_eq!(t.preview_bytes, 4096);
    assert!(!t.ieof);
    assert!(t.continued);
    assert_eq!(t.body_len, 100_000);
    assert!(t.complete);
}

#[tokio::test]
async fn short_empty_and_exact_files_end_with_ieof() {
    let server = MockServer::builder()
        .service(ServiceConfig::new("avscan").preview(Some(16)))
        .start()
        .await;
    let c = client(&server);
    for (len, name) in [(0usize, "empty"), (5, "short"), (16, "exact")] {
        server.clear_journal().await;
        let r = c.scan_bytes(vec![b'a'; len], &ScanMeta::new(name)).await;
        assert!(r.verdict.is_clean(), "{name}: {r:?}");
        let j = server.journal().await;
        let t = respmods(&j)[0];
        assert!(t.ieof, "{name}");
        assert!(!t.continued, "{name}");
        assert_eq!(t.body_len, len as u64, "{name}");
    }
    // One byte more than the preview needs 100 Continue.
    server.clear_journal().await;
    let r = c.scan_bytes(vec![b'a'; 17], &ScanMeta::new("over")).await;
    assert!(r.verdict.is_clean());
    let j = server.journal().await;
    let t = respmods(&j)[0];
    assert!(!t.ieof && t.continued && t.body_len == 17);
}

#[tokio::test]
async fn eicar_in_preview_is_found_without_continue() {
    let server = MockServer::start().await;
    let mut body = eicar().to_vec();
    body.extend(vec![b' '; 200_000]);
    let r = client(&server)
        .scan_bytes(body, &ScanMeta::new("x.com"))
        .await;
    assert!(r.verdict.is_infected(), "{r:?}");
    let j = server.journal().await;
    let t = respmods(&j)[0];
    assert_eq!(t.preview, Some(1024));
    assert!(!t.continued, "the verdict came on the preview");
}

#[tokio::test]
async fn preview_off_and_fixed() {
    let server = MockServer::start().await;
    let c = builder(&server.url())
        .preview(PreviewMode::Off)
        .build()
        .unwrap();
    assert!(
        c.scan_bytes(vec![1u8; 5000], &ScanMeta::new("a"))
            .await
            .verdict
            .is_clean()
    );
    let j = server.journal().await;
    assert_eq!(respmods(&j)[0].preview, None);
    assert_eq!(respmods(&j)[0].body_len, 5000);

    server.clear_journal().await;
    let c = builder(&server.url())
        .preview(PreviewMode::Fixed(10))
        .build()
        .unwrap();
    assert!(
        c.scan_bytes(vec![1u8; 5000], &ScanMeta::new("a"))
            .await
            .verdict
            .is_clean()
    );
    let j = server.journal().await;
    assert_eq!(respmods(&j)[0].preview, Some(10));
    assert_eq!(respmods(&j)[0].preview_bytes, 10);
}

#[tokio::test]
async fn no_preview_when_the_service_announces_none() {
    let server = MockServer::builder()
        .service(ServiceConfig::new("avscan").preview(None))
        .start()
        .await;
    let r = client(&server)
        .scan_bytes(vec![1u8; 3000], &ScanMeta::new("a"))
        .await;
    assert!(r.verdict.is_clean());
    assert_eq!(respmods(&server.journal().await)[0].preview, None);
}

#[tokio::test]
async fn transfer_complete_and_ignore() {
    let server = MockServer::builder()
        .service(ServiceConfig::new("avscan").transfer(&["*"], &["mp4"], &["exe"]))
        .start()
        .await;
    let c = client(&server);
    let r = c
        .scan_bytes(vec![1u8; 3000], &ScanMeta::new("setup.exe"))
        .await;
    assert!(r.verdict.is_clean());
    assert_eq!(respmods(&server.journal().await)[0].preview, None);
    server.clear_journal().await;
    let r = c
        .scan_bytes(vec![1u8; 3000], &ScanMeta::new("movie.mp4"))
        .await;
    assert!(
        matches!(
            r.verdict,
            Verdict::NotScanned {
                reason: NotScannedReason::IgnoredByServer { .. }
            }
        ),
        "{r:?}"
    );
    assert!(respmods(&server.journal().await).is_empty());
}

#[tokio::test]
async fn size_limit_not_scanned_too_large_and_nothing_sent() {
    let server = MockServer::start().await;
    let c = builder(&server.url()).max_size(Some(100)).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "big.bin", &[0u8; 101]);
    let r = c.scan_file(&path, &ScanMeta::default()).await;
    assert!(
        matches!(
            r.verdict,
            Verdict::NotScanned {
                reason: NotScannedReason::TooLarge {
                    size: 101,
                    limit: 100
                }
            }
        ),
        "{r:?}"
    );
    assert!(path.exists());
    assert!(server.journal().await.is_empty());
    // Exactly at the limit is scanned.
    let path = write(dir.path(), "ok.bin", &[0u8; 100]);
    assert!(
        c.scan_file(&path, &ScanMeta::default())
            .await
            .verdict
            .is_clean()
    );
    // A reader of unknown size is cut off while streaming.
    let r = c
        .scan_reader(&[0u8; 5000][..], None, &ScanMeta::new("stream"))
        .await;
    assert!(
        matches!(
            r.verdict,
            Verdict::NotScanned {
                reason: NotScannedReason::TooLarge { limit: 100, .. }
            }
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn default_size_limit_is_25_mib() {
    let server = MockServer::start().await;
    let c = client(&server);
    assert_eq!(c.max_size(), Some(25 * 1024 * 1024));
    let r = c
        .scan_reader(
            tokio::io::repeat(0),
            Some(25 * 1024 * 1024 + 1),
            &ScanMeta::new("huge"),
        )
        .await;
    assert!(matches!(r.verdict, Verdict::NotScanned { .. }), "{r:?}");
}

#[tokio::test]
async fn reqmod() {
    let server = MockServer::start().await;
    let c = builder(&server.url())
        .method(Method::Reqmod)
        .build()
        .unwrap();
    let r = c.scan_bytes(eicar(), &ScanMeta::new("eicar.com")).await;
    assert!(r.verdict.is_infected(), "{r:?}");
    let r = c.scan_bytes(&b"fine"[..], &ScanMeta::new("fine.txt")).await;
    assert!(r.verdict.is_clean(), "{r:?}");
    let j = server.journal().await;
    let reqmods: Vec<_> = j.iter().filter(|t| t.method == Method::Reqmod).collect();
    assert_eq!(reqmods.len(), 2);
    assert_eq!(reqmods[0].http_request.as_ref().unwrap().method(), b"POST");
    assert!(reqmods[0].http_response.is_none());
}

#[tokio::test]
async fn method_not_offered_fails_with_405() {
    let server = MockServer::builder()
        .service(ServiceConfig::new("avscan").methods(&[Method::Reqmod]))
        .start()
        .await;
    let r = client(&server)
        .scan_bytes(&b"x"[..], &ScanMeta::new("a"))
        .await;
    assert_eq!(r.verdict.error().unwrap().status(), Some(405));
    assert!(respmods(&server.journal().await).is_empty());
}

#[tokio::test]
async fn bind_local_address() {
    let server = MockServer::start().await;
    let c = builder(&server.url())
        .bind("127.0.0.2".parse().unwrap())
        .build()
        .unwrap();
    assert!(
        c.scan_bytes(&b"x"[..], &ScanMeta::new("a"))
            .await
            .verdict
            .is_clean()
    );
    let j = server.journal().await;
    assert!(!j.is_empty());
    for t in &j {
        assert_eq!(t.peer.unwrap().ip().to_string(), "127.0.0.2");
    }
}

#[tokio::test]
async fn server_by_host_port_and_service_name() {
    let server = MockServer::builder()
        .service(ServiceConfig::new("virus_scan"))
        .start()
        .await;
    let c = icap_client::Client::builder()
        .server_parts("127.0.0.1", Some(server.addr().port()), "virus_scan", false)
        .build()
        .unwrap();
    assert!(
        c.scan_bytes(eicar(), &ScanMeta::new("e"))
            .await
            .verdict
            .is_infected()
    );
    // A wrong service name is a 404 from the server.
    let c = icap_client::Client::builder()
        .server_parts("127.0.0.1", Some(server.addr().port()), "avscan", false)
        .build()
        .unwrap();
    let r = c.scan_bytes(&b"x"[..], &ScanMeta::new("a")).await;
    assert_eq!(r.verdict.error().unwrap().status(), Some(404), "{r:?}");
}

#[tokio::test]
async fn options_are_cached_and_refreshed_on_istag_change() {
    let server = MockServer::start().await;
    let c = client(&server);
    for _ in 0..3 {
        assert!(
            c.scan_bytes(&b"x"[..], &ScanMeta::new("a"))
                .await
                .verdict
                .is_clean()
        );
    }
    assert_eq!(count_options(&server.journal().await), 1);
    // A response with another ISTag means the service changed: ask OPTIONS again. Mounting a
    // rule changes the mock's ISTag (an extra ISTag header would be a second, conflicting
    // copy, which the codec reads as no ISTag at all).
    Mock::given(any())
        .respond_with(icap_mock_server::Reply::clean())
        .times(1)
        .mount(&server)
        .await;
    assert!(
        c.scan_bytes(&b"x"[..], &ScanMeta::new("a"))
            .await
            .verdict
            .is_clean()
    );
    assert!(
        c.scan_bytes(&b"x"[..], &ScanMeta::new("a"))
            .await
            .verdict
            .is_clean()
    );
    assert_eq!(count_options(&server.journal().await), 2);
}

fn toml_settings(text: &str) -> icap_client::settings::Settings {
    toml::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn absurd_durations_in_toml_are_refused_by_name_not_a_panic() {
    for (value, word) in [
        ("1e300", "too large"),
        ("\"99999999999999999999999h\"", "too large"),
        ("-1", "negative"),
        ("\"-5s\"", "negative"),
        ("nan", "not a finite number"),
        ("inf", "not a finite number"),
        ("\"5 fortnights\"", "not a duration"),
    ] {
        let s = toml_settings(&format!(
            "servers = [\"icap://127.0.0.1/avscan\"]\n[timeouts]\nconnect = {value}\n"
        ));
        let e = s.client_builder().expect_err(value);
        assert!(e.is_config(), "{value}: {e:?}");
        assert!(e.to_string().contains("timeouts.connect"), "{value}: {e}");
        let msg = format!("{e:#}");
        assert!(msg.contains(word), "{value}: {msg}");
        let typed = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<icap_client::settings::DurationError>());
        assert!(typed.is_some(), "{value}: typed source");
    }
    let s =
        toml_settings("servers = [\"icap://127.0.0.1/avscan\"]\n[health]\nrevival = \"1e400\"\n");
    assert!(
        s.client_builder()
            .unwrap_err()
            .to_string()
            .contains("health.revival")
    );
    // The value is echoed escaped: a control character cannot break the message.
    let s = toml_settings(
        "servers = [\"icap://127.0.0.1/avscan\"]\n[timeouts]\nidle = \"5s\\r\\nX: y\"\n",
    );
    let msg = s.client_builder().unwrap_err().to_string();
    assert!(!msg.contains(['\r', '\n']), "{msg}");
    assert!(msg.contains(r"5s\r\nX: y"), "{msg}");
}

#[tokio::test]
async fn huge_timeouts_are_clamped_and_scans_still_work() {
    // 114 years: a valid duration, cut to MAX_TIMEOUT so that `now + idle` cannot overflow.
    let server = MockServer::start().await;
    let s = toml_settings(&format!(
        "servers = [\"{}\"]\n[timeouts]\nconnect = \"1000000h\"\nidle = 1e15\ncontinue = \"1000000h\"\ndeadline = 1e15\ndeadline_per_mib = 1e15\n[health]\nrevival = 1e15\nwindow = 1e15\n",
        server.url()
    ));
    let t = s.timeouts.timeouts().unwrap();
    assert_eq!(t.connect, icap_client::MAX_TIMEOUT);
    assert_eq!(t.idle, icap_client::MAX_TIMEOUT);
    assert_eq!(t.deadline_for(u64::MAX), icap_client::MAX_TIMEOUT);
    let c = s.client_builder().unwrap().build().unwrap();
    assert!(
        c.scan_bytes(&b"x"[..], &ScanMeta::new("a"))
            .await
            .verdict
            .is_clean()
    );
    assert!(
        c.scan_bytes(eicar(), &ScanMeta::new("e"))
            .await
            .verdict
            .is_infected()
    );
}

#[tokio::test]
async fn limits_section_reaches_the_client() {
    let server = MockServer::start().await;
    // The mock's OPTIONS head is far longer than 40 bytes.
    let cfg = toml_settings(&format!(
        "servers = [\"{}\"]\n[limits]\nmax_head = 40\n",
        server.url()
    ));
    let client = cfg.client_builder().unwrap().build().unwrap();
    let report = client.scan_bytes(&b"x"[..], &ScanMeta::new("a")).await;
    let err = report
        .verdict
        .error()
        .expect("a head over max_head fails the scan");
    assert!(err.is_protocol(), "{err:?}");
    assert!(err.to_string().contains("limit"), "{err}");
    // The same with the defaults: fine.
    let cfg = toml_settings(&format!(
        "servers = [\"{}\"]\n[limits]\nmax_head = 65536\nmax_headers = 100\nmax_header_line = 16384\nmax_http_head = 65536\nmax_chunk_line = 4096\nmax_chunk_extensions = 16384\nmax_trailers = 16384\nmax_adapted_body = 0\n",
        server.url()
    ));
    assert_eq!(cfg.limits.proto_limits(), icap_proto::Limits::default());
    let client = cfg.client_builder().unwrap().build().unwrap();
    assert!(
        client
            .scan_bytes(&b"x"[..], &ScanMeta::new("a"))
            .await
            .verdict
            .is_clean()
    );
    assert!(toml::from_str::<icap_client::settings::Settings>("[limits]\nmax_hed = 1\n").is_err());
}

#[test]
fn every_limits_key_and_switch_reaches_the_builder() {
    // The builder keeps its settings private; its Debug output shows what it holds.
    let s = toml_settings(
        "servers = [\"icap://127.0.0.1/avscan\"]\nallow_204 = false\nallow_206 = false\nretry_backoff = \"250ms\"\nretry_backoff_max = \"3s\"\n[limits]\nmax_head = 1001\nmax_headers = 1002\nmax_header_line = 1003\nmax_http_head = 1004\nmax_chunk_line = 1005\nmax_chunk_extensions = 1006\nmax_trailers = 1007\nmax_adapted_body = 1008\n",
    );
    let dbg = format!("{:?}", s.client_builder().unwrap());
    for want in [
        "allow_204: false",
        "max_head: 1001",
        "max_headers: 1002",
        "max_header_line: 1003",
        "max_http_head: 1004",
        "max_chunk_line: 1005",
        "max_chunk_extensions: 1006",
        "max_trailers: 1007",
        "max_adapted_body: Some(1008)",
        "retry_backoff: (250ms, 3s)",
    ] {
        assert!(dbg.contains(want), "{want} in {dbg}");
    }
    let s =
        toml_settings("servers = [\"icap://127.0.0.1/avscan\"]\n[limits]\nmax_adapted_body = 0\n");
    assert!(format!("{:?}", s.client_builder().unwrap()).contains("max_adapted_body: None"));
    let s = toml_settings("servers = [\"icap://127.0.0.1/avscan\"]\nallow_206 = true\n");
    let e = s.client_builder().unwrap_err();
    assert!(e.is_config() && e.to_string().contains("allow_206"), "{e}");
    let s = toml_settings("servers = [\"icap://127.0.0.1/avscan\"]\nretry_backoff = \"soon\"\n");
    assert!(
        s.client_builder()
            .unwrap_err()
            .to_string()
            .contains("retry_backoff")
    );
}

#[test]
fn keepalive_settings() {
    let t = |text: &str| {
        toml_settings(text)
            .timeouts
            .timeouts()
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .keepalive
    };
    let d = icap_client::Keepalive::default();
    assert_eq!(t(""), Some(d));
    assert_eq!(t("[timeouts]\nkeepalive = true\n"), Some(d));
    assert_eq!(t("[timeouts]\nkeepalive = false\n"), None);
    assert_eq!(t("[timeouts]\nkeepalive = \"off\"\n"), None);
    assert_eq!(
        t("[timeouts]\nkeepalive = \"2m\"\nkeepalive_interval = 5\n"),
        Some(icap_client::Keepalive::new(
            std::time::Duration::from_secs(120),
            std::time::Duration::from_secs(5)
        ))
    );
    let e = toml_settings("[timeouts]\nkeepalive = -3\n")
        .timeouts
        .timeouts()
        .unwrap_err();
    assert!(e.to_string().contains("timeouts.keepalive"), "{e}");
}

#[tokio::test]
async fn no_allow_204_from_the_config_file() {
    let server = MockServer::start().await;
    let s = toml_settings(&format!(
        "servers = [\"{}\"]\nallow_204 = false\npreview = \"off\"\n",
        server.url()
    ));
    let c = s.client_builder().unwrap().build().unwrap();
    let r = c.scan_bytes(&b"x"[..], &ScanMeta::new("a")).await;
    assert!(r.verdict.is_clean(), "{r:?}");
    let j = server.journal().await;
    assert!(!respmods(&j)[0].allow_204, "no Allow: 204 was sent");
    let c = client(&server);
    assert!(
        c.scan_bytes(&b"x"[..], &ScanMeta::new("b"))
            .await
            .verdict
            .is_clean()
    );
    assert!(respmods(&server.journal().await)[1].allow_204);
}

#[test]
fn server_parts_with_crlf_give_a_one_line_message() {
    let s = toml_settings("[server]\nhost = \"127.0.0.1\"\nservice = \"av\\r\\nscan\"\n");
    let msg = s.client_builder().unwrap_err().to_string();
    assert!(!msg.contains(['\r', '\n']), "{msg}");
    assert!(msg.contains(r"av\r\nscan"), "{msg}");
}

/// A raw server whose OPTIONS says `Options-TTL: 18446744073709551615` and which answers
/// every scan `204`, on as many connections as the client opens.
pub(crate) async fn huge_ttl_server() -> String {
    raw_options_server("Options-TTL: 18446744073709551615\r\n").await
}

/// A raw server whose OPTIONS answer carries `extra` header lines and which answers every
/// scan `204` once its body (or preview) has ended.
pub(crate) async fn raw_options_server(extra: &'static str) -> String {
    raw_server(format!(
        "ICAP/1.0 200 OK\r\nMethods: RESPMOD\r\nISTag: \"ttl-1\"\r\n{extra}Encapsulated: null-body=0\r\n\r\n"
    ))
    .await
}

/// A raw server whose OPTIONS answer has no `ISTag` (and which would call any scan clean).
pub(crate) async fn no_istag_server() -> String {
    raw_server(
        "ICAP/1.0 200 OK\r\nMethods: RESPMOD\r\nEncapsulated: null-body=0\r\n\r\n".to_owned(),
    )
    .await
}

async fn raw_server(options_answer: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("icap://{}/avscan", l.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let options_answer = options_answer.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if got.starts_with(b"OPTIONS") && got.ends_with(b"\r\n\r\n") {
                        got.clear();
                        if s.write_all(options_answer.as_bytes()).await.is_err() {
                            return;
                        }
                    } else if got.starts_with(b"RESPMOD")
                        && (got.ends_with(b"\r\n0\r\n\r\n") || got.ends_with(b"0; ieof\r\n\r\n"))
                    {
                        got.clear();
                        let answer = b"ICAP/1.0 204 No Content\r\nISTag: \"ttl-1\"\r\nEncapsulated: null-body=0\r\n\r\n";
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn options_ttl_of_u64_max_does_not_panic() {
    let url = huge_ttl_server().await;
    let c = builder(&url).preview(PreviewMode::Off).build().unwrap();
    let reports = tokio::time::timeout(std::time::Duration::from_secs(10), c.test())
        .await
        .expect("bounded");
    assert!(reports[0].ok, "{reports:?}");
    // Clamped to 30 days by the codec's OptionsRules, with a warning.
    let o = reports[0].options.as_ref().unwrap();
    assert_eq!(o.options_ttl, Some(30 * 24 * 3600));
    assert!(
        o.warnings.iter().any(|w| w.contains("Options-TTL")),
        "{:?}",
        o.warnings
    );
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        c.scan_bytes(&b"x"[..], &ScanMeta::new("a")),
    )
    .await
    .expect("bounded");
    assert!(r.verdict.is_clean(), "{r:?}");
}

#[tokio::test]
async fn options_without_istag_make_the_service_unusable() {
    let url = no_istag_server().await;
    let c = builder(&url).preview(PreviewMode::Off).build().unwrap();
    let t = c.test_server(&c.server(0).unwrap()).await;
    assert!(!t.ok, "{t:?}");
    assert_eq!(t.diagnosis, icap_client::Diagnosis::MissingIsTag, "{t:?}");
    assert!(t.hint.contains("UNUSABLE"), "{}", t.hint);
    let r = c.scan_bytes(&b"x"[..], &ScanMeta::new("a")).await;
    assert!(r.verdict.is_failed(), "never Clean without ISTag: {r:?}");
    // The lenient switch makes it usable, and says so in a warning-free answer.
    let c = builder(&url)
        .preview(PreviewMode::Off)
        .options_rules(icap_proto::OptionsRules::default().with_require_istag(false))
        .build()
        .unwrap();
    let r = c.scan_bytes(&b"x"[..], &ScanMeta::new("a")).await;
    assert!(r.verdict.is_clean(), "lenient: {r:?}");
}

#[tokio::test]
async fn max_connections_given_twice_with_different_values_is_ignored() {
    let url = raw_options_server("Max-Connections: 2\r\nMax-Connections: 7\r\n").await;
    let c = builder(&url).max_connections(16).build().unwrap();
    let t = c.test_server(&c.server(0).unwrap()).await;
    assert!(t.ok, "{t:?}");
    let o = t.options.unwrap();
    assert_eq!(o.max_connections, None, "a conflict is no value");
    assert!(
        o.warnings.iter().any(|w| w.contains("Max-Connections")),
        "{:?}",
        o.warnings
    );
    assert_eq!(
        c.server(0).unwrap().connection_limit(),
        16,
        "the configured limit stays"
    );
}

#[tokio::test]
async fn a_fixed_preview_above_max_preview_is_refused() {
    let e = builder("icap://127.0.0.1:1/avscan")
        .preview(PreviewMode::Fixed(99_999_999_999))
        .build()
        .unwrap_err();
    assert!(
        e.is_config() && e.to_string().contains("max_preview"),
        "{e}"
    );
    builder("icap://127.0.0.1:1/avscan")
        .preview(PreviewMode::Fixed(99_999_999_999))
        .options_rules(icap_proto::OptionsRules::default().with_max_preview(u64::MAX))
        .build()
        .expect("allowed when max_preview says so");
}

#[tokio::test]
async fn options_warnings_are_reported() {
    let url = raw_options_server("Preview: 99999999999\r\nMax-Connections: 0\r\n").await;
    let c = builder(&url).build().unwrap();
    let t = c.test_server(&c.server(0).unwrap()).await;
    assert!(t.ok, "{t:?}");
    let o = t.options.unwrap();
    assert_eq!(o.preview, Some(64 * 1024));
    assert_eq!(o.max_connections, None);
    assert_eq!(o.warnings.len(), 2, "{:?}", o.warnings);
    assert!(
        o.warnings[0].contains("Preview: 99999999999 clamped to 65536"),
        "{:?}",
        o.warnings
    );
}
