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
    // A response with another ISTag means the service changed: ask OPTIONS again.
    Mock::given(any())
        .respond_with(icap_mock_server::Verdict::clean().with_header("ISTag", "\"changed-1\""))
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
