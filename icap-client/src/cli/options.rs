//! `icap-client options`: the ICAP Test of each server, as text or JSON lines.

use anyhow::Result;
use icap_client::{Client, Diagnosis};

use super::output::{ms, shown};

/// Prints the ICAP Test of every configured server; 0 when all pass, 2 otherwise.
pub(crate) async fn options(client: &Client, json: bool) -> Result<u8> {
    let reports = client.test().await;
    let mut code = 0;
    for r in &reports {
        if !r.ok {
            code = 2;
        }
        if json {
            println!("{}", serde_json::to_string(r)?);
            continue;
        }
        println!("{}: {}", r.server, if r.ok { "OK" } else { "FAILED" });
        println!(
            "  diagnosis: {}",
            serde_json::to_value(&r.diagnosis)?["kind"]
                .as_str()
                .unwrap_or("?")
        );
        println!("  hint: {}", r.hint);
        if let Some(e) = &r.error {
            println!("  error: {}", shown(&format!("{e:#}")));
        }
        if r.diagnosis == Diagnosis::MissingIsTag {
            println!(
                "  UNUSABLE: the service sent no ISTag (RFC 3507 section 4.10.2); scans will not be sent to it"
            );
        }
        println!("  connect: {}  rtt: {}", ms(r.connect), ms(r.rtt));
        if let (Some(v), Some(c)) = (&r.tls_version, &r.tls_cipher) {
            println!("  tls: {v} {c}");
        }
        if let Some(o) = &r.options {
            println!("  methods: {}", o.methods.join(", "));
            if let Some(s) = &o.service {
                println!("  service: {}", shown(s));
            }
            if let Some(t) = &o.istag {
                println!("  istag: {}", shown(t));
            }
            println!(
                "  preview: {}  allow 204: {}  max-connections: {}  options-ttl: {}",
                o.preview.map_or("-".into(), |p| p.to_string()),
                o.allow_204,
                o.max_connections.map_or("-".into(), |p| p.to_string()),
                o.options_ttl.map_or("-".into(), |p| format!("{p} s")),
            );
            for w in &o.warnings {
                println!("  warning: {}", shown(w));
            }
        }
    }
    Ok(code)
}
