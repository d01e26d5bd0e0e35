//! The configuration file: the README's full example parses and behaves as described.

use icap_mock_server::MockServer;
use icap_mock_server::config::ConfigFile;
use icap_proto::{Method, verdict};

use crate::support::*;

/// The example from the README (kept in sync by this test reading the README itself).
fn readme_example() -> String {
    let readme = include_str!("../../README.md");
    let start = readme.find("```toml\n").expect("README has a toml example") + 8;
    let end = start + readme[start..].find("```").unwrap();
    readme[start..end].to_owned()
}

#[tokio::test]
async fn readme_example_config_works() {
    let file = ConfigFile::from_toml(&readme_example()).unwrap();
    assert_eq!(file.services.len(), 2);
    let builder = MockServer::builder().config(file.settings().unwrap());
    let server = builder.start().await;
    let mut c = Conn::open(server.addr()).await;
    // Service "symantec" answers in its dialect.
    c.send(&respmod("symantec", "", RES_HDR, &one_chunk(EICAR)))
        .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 201);
    // The byte signature of "avscan".
    c.send(&respmod(
        "avscan",
        "",
        RES_HDR,
        &one_chunk(b"xx CONFIDENTIAL-DO-NOT-SHIP yy"),
    ))
    .await;
    assert_eq!(
        verdict::threats(&c.answer(Method::Respmod).await.head)[0].name,
        "Policy.Confidential"
    );
    // The rule for *.zip.
    c.send(&respmod_with_url(
        "avscan",
        "",
        "/d/archive.zip",
        &one_chunk(b"PK"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(
        (a.status(), a.header("X-Error-Code").as_deref()),
        (500, Some("password_protected"))
    );
    // OPTIONS of "avscan" as configured.
    c.send(b"OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n\r\n")
        .await;
    let o = icap_proto::OptionsResponse::from_head(&c.answer(Method::Options).await.head).unwrap();
    assert_eq!((o.preview, o.max_connections), (Some(4096), Some(50)));
}

#[test]
fn bad_configs_are_refused_with_a_reason() {
    let rows = [
        ("bogus = 1", "unknown field"),
        (
            "[[service]]\nname = \"a\"\ndialect = \"nortel\"",
            "unknown variant",
        ),
        ("[[rule]]\nthen = { fault = \"explode\" }", ""),
        ("[[rule]]\ntimes = 1\nevery = 2", ""),
        (
            "[[service]]\nname = \"a\"\nsignatures = [{ sha256 = \"zz\", name = \"x\" }]",
            "",
        ),
    ];
    for (text, want) in rows {
        let r = ConfigFile::from_toml(text).and_then(|f| f.settings().map(|_| ()));
        let e = r.expect_err(text).to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
}

#[test]
fn config_errors_name_the_key_or_the_line() {
    use icap_mock_server::config::ConfigError;
    let e = ConfigFile::from_toml("listen = \"x\"\n\nnope = 1\n").unwrap_err();
    assert!(
        matches!(e, ConfigError::Toml { line: Some(3), .. }),
        "{e:?}"
    );
    let e = ConfigFile::from_toml("[[rule]]\nthen = { verdict = \"maybe\" }\n")
        .unwrap()
        .settings()
        .unwrap_err();
    assert_eq!(e.key(), Some("rule.then.verdict"));
    assert_eq!(
        e.to_string(),
        "unknown verdict \"maybe\"; valid verdicts: scan, clean, infected, error, status"
    );
    let e = ConfigFile::from_toml(
        "[tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n",
    )
    .unwrap()
    .settings()
    .unwrap_err();
    assert!(
        matches!(&e, ConfigError::Read { path, .. } if path.ends_with("c.pem")),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with("reading /nonexistent/c.pem: "),
        "{e}"
    );
}
