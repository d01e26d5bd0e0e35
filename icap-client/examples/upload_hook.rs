//! The upload hook of a file sharing product, complete: refuse uploads while the antivirus
//! is unavailable (with `delete_on_scan_fail`), scan each file right after its upload,
//! apply the policy, forward alerts to the admin portal and notices to the uploader.
//!
//! ```text
//! cargo run -p icap-client --example upload_hook -- icap://127.0.0.1:1344/avscan FILE...
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use icap_client::{
    Client, Event, FileAction, Guard, IdentityHeaders, Outcome, Policy, Timeouts, Uploader,
    UserType, Verdict,
};

/// What the product knows about the person uploading.
struct Session {
    user: String,
    email: String,
    kind: UserType,
    groups: Vec<String>,
    ip: std::net::IpAddr,
}

/// Built once at startup from the product's settings page.
fn build_guard(server_url: &str, audit_log: &Path) -> Result<Guard, icap_client::Error> {
    let client = Client::builder()
        .server(server_url) // "ICAP Remote Hostname", "ICAP Port", "ICAP Service Name", "Secure ICAP"
        .bind("0.0.0.0".parse().expect("literal IP")) // "Server Local IP"
        .max_size(Some(25 * 1024 * 1024)) // "File Size Limit"
        .identity_headers(IdentityHeaders::filecloud()) // X-FILECLOUD-USER-* (disabled(): none)
        .timeouts(Timeouts::default().with_connect(Duration::from_secs(5)))
        .build()?;
    let policy = Policy::default()
        .with_on_infected(FileAction::Delete)
        .with_delete_on_scan_fail(true) // TONIDOCLOUD_ICAP_DELETE_ON_SCAN_FAIL
        .with_audit_log(audit_log);
    Guard::new(client, policy)
}

/// Called before accepting an upload: with `delete_on_scan_fail`, refuse uploads while the
/// ICAP server is down (fails fast while it is marked down).
async fn before_upload(guard: &Guard) -> Result<(), String> {
    guard
        .admit_upload()
        .await
        .map_err(|e| format!("uploads are paused: the antivirus server is unavailable ({e})"))
}

/// Called as soon as an upload completes ("inline" scan).
async fn after_upload(guard: &Guard, path: &Path, s: &Session) -> Outcome {
    let who = Uploader::new(&s.user)
        .with_email(&s.email)
        .with_user_type(s.kind)
        .with_groups(s.groups.clone())
        .with_ip(s.ip);
    guard.check_upload(path, Some(&who)).await
}

/// Alerts go to the admin portal, notices become toasts for the uploader.
fn forward_events(guard: &Guard) -> tokio::task::JoinHandle<()> {
    let mut rx = guard.subscribe();
    tokio::spawn(async move {
        while let Ok(event) = rx.recv().await {
            match event {
                Event::Alert(a) => eprintln!("[admin alert] {}", a.message),
                Event::Notice(n) => eprintln!("[toast for the uploader] {}", n.message),
                Event::Audit(_) => {} // already in the audit log file
            }
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: upload_hook ICAP_URL FILE...")?;
    let files: Vec<PathBuf> = args.map(PathBuf::from).collect();
    let audit = std::env::temp_dir().join("icap-upload-hook-audit.jsonl");
    let guard = build_guard(&url, &audit)?;
    let events = forward_events(&guard);
    let session = Session {
        user: "alice".into(),
        email: "alice@example.com".into(),
        kind: UserType::Full,
        groups: vec!["sales".into()],
        ip: "192.0.2.10".parse()?,
    };
    for f in &files {
        if let Err(refusal) = before_upload(&guard).await {
            println!("{}: refused: {refusal}", f.display());
            continue;
        }
        let outcome = after_upload(&guard, f, &session).await;
        let verdict = match &outcome.report.verdict {
            Verdict::Clean => "clean".to_owned(),
            Verdict::Infected { threats } => format!("infected ({})", threats[0].name),
            other => other.label().to_owned(),
        };
        println!(
            "{}: {verdict}, action {}",
            f.display(),
            outcome.action.label()
        );
    }
    println!("audit log: {}", audit.display());
    drop(guard);
    events.abort();
    Ok(())
}
