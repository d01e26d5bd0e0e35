//! Each fixture decoded with its exact expected events and values, then re-encoded.

use std::time::Duration;

use bytes::Bytes;
use icap_proto::options::Transfer;
use icap_proto::verdict::{self, Threat, ThreatSource};
use icap_proto::{
    BodyEnd, BodyKind, Encapsulated, HttpRequestHead, HttpResponseHead, Method, OptionsResponse,
    RequestHead, ResponseHead, Scheme, Section,
};

use crate::common::{
    Ev, FIXTURES, Kind, Msg, encode_events, expect_fields, feed_whole, fields, fixture, merge_data,
    method_of,
};

/// Decodes a whole fixture: it must end cleanly with every byte consumed.
fn decode(name: &str) -> Vec<Ev> {
    let (_, kind, _) = FIXTURES
        .iter()
        .find(|(n, _, _)| *n == name)
        .unwrap_or_else(|| panic!("{name} is not in FIXTURES"));
    let out = feed_whole(*kind, &fixture(name));
    assert_eq!(out.error, None, "{name}");
    assert!(out.idle, "{name}: decoder not idle at the end");
    assert_eq!(out.left, 0, "{name}: bytes left over");
    out.events
}

fn req_head(e: &Ev) -> &RequestHead {
    match e {
        Ev::Head(m) => m.request(),
        other => panic!("expected a head, got {other:?}"),
    }
}

fn res_head(e: &Ev) -> &ResponseHead {
    match e {
        Ev::Head(m) => m.response(),
        other => panic!("expected a head, got {other:?}"),
    }
}

fn data(bytes: &[u8]) -> Ev {
    Ev::Data(Bytes::copy_from_slice(bytes))
}

fn end() -> Ev {
    Ev::End(BodyEnd::default())
}

fn end_ieof() -> Ev {
    Ev::End(BodyEnd {
        ieof: true,
        ..BodyEnd::default()
    })
}

fn check_http_req(h: &HttpRequestHead, line: (&str, &str, &str), headers: &[&[u8]]) {
    assert_eq!(h.method(), line.0.as_bytes());
    assert_eq!(h.target(), line.1.as_bytes());
    assert_eq!(h.version(), line.2.as_bytes());
    assert_eq!(fields(&h.headers), expect_fields(headers));
}

fn check_http_res(h: &HttpResponseHead, line: (&str, u16, &str), headers: &[&[u8]]) {
    assert_eq!(h.version(), line.0.as_bytes());
    assert_eq!(h.status(), line.1);
    assert_eq!(h.reason(), line.2.as_bytes());
    assert_eq!(fields(&h.headers), expect_fields(headers));
}

fn threat(name: &str, source: ThreatSource) -> Threat {
    Threat {
        name: name.to_owned(),
        source,
        kind: None,
        resolution: None,
        file: None,
        problem_id: None,
    }
}

const RFC_ICAP_RES: [&[u8]; 4] = [
    b"Date: Mon, 10 Jan 2000  09:55:21 GMT",
    b"Server: ICAP-Server-Software/1.0",
    b"Connection: close",
    b"ISTag: \"W3E4R7U9-L2E4-2\"",
];

fn rfc_res_fields(encapsulated: &'static [u8]) -> Vec<(String, Vec<u8>)> {
    let mut f = expect_fields(&RFC_ICAP_RES);
    f.extend(expect_fields(&[encapsulated]));
    f
}

#[test]
fn rfc_example_1_request() {
    let ev = decode("rfc3507-ex1-reqmod-request.icap");
    assert_eq!(ev.len(), 2);
    let h = req_head(&ev[0]);
    assert_eq!(h.method, Method::Reqmod);
    assert_eq!(h.uri.as_bytes(), b"icap://icap-server.net/server?arg=87");
    assert_eq!(h.uri.scheme(), Scheme::Icap);
    assert_eq!(h.uri.host(), "icap-server.net");
    assert_eq!(h.uri.port(), 1344);
    assert_eq!(h.uri.service(), "server");
    assert_eq!(h.uri.path_and_query(), "/server?arg=87");
    assert_eq!(
        fields(&h.headers),
        expect_fields(&[
            b"Host: icap-server.net",
            b"Encapsulated: req-hdr=0, null-body=170"
        ])
    );
    check_http_req(
        h.http_request.as_ref().unwrap(),
        ("GET", "/", "HTTP/1.1"),
        &[
            b"Host: www.origin-server.com",
            b"Accept: text/html, text/plain",
            b"Accept-Encoding: compress",
            b"Cookie: ff39fk3jur@4ii0e02i",
            b"If-None-Match: \"xyzzy\", \"r2d2xxxx\"",
        ],
    );
    assert_eq!(h.http_response, None);
    assert_eq!(h.body, None);
    assert_eq!(h.preview(), Ok(None));
    assert!(!h.allows_204());
    assert_eq!(h.encapsulated().to_string(), "req-hdr=0, null-body=170");
    assert_eq!(ev[1], end());
}

#[test]
fn rfc_example_1_response() {
    let ev = decode("rfc3507-ex1-reqmod-response.icap");
    assert_eq!(ev.len(), 2);
    let h = res_head(&ev[0]);
    assert_eq!(h.status.as_u16(), 200);
    assert_eq!(h.reason(), b"OK");
    assert_eq!(h.istag(), Some(&b"W3E4R7U9-L2E4-2"[..]));
    assert_eq!(
        fields(&h.headers),
        rfc_res_fields(b"Encapsulated: req-hdr=0, null-body=231")
    );
    check_http_req(
        h.http_request.as_ref().unwrap(),
        ("GET", "/modified-path", "HTTP/1.1"),
        &[
            b"Host: www.origin-server.com",
            b"Via: 1.0 icap-server.net (ICAP Example ReqMod Service 1.1)",
            b"Accept: text/html, text/plain, image/gif",
            b"Accept-Encoding: gzip, compress",
            b"If-None-Match: \"xyzzy\", \"r2d2xxxx\"",
        ],
    );
    assert_eq!(h.http_response, None);
    assert_eq!(h.body, None);
    assert_eq!(verdict::threats(h), vec![]);
    assert_eq!(ev[1], end());
}

#[test]
fn rfc_example_2_request() {
    let ev = decode("rfc3507-ex2-reqmod-request.icap");
    assert_eq!(ev.len(), 3);
    let h = req_head(&ev[0]);
    assert_eq!(h.method, Method::Reqmod);
    assert_eq!(
        fields(&h.headers),
        expect_fields(&[
            b"Host: icap-server.net",
            b"Encapsulated: req-hdr=0, req-body=147"
        ])
    );
    check_http_req(
        h.http_request.as_ref().unwrap(),
        ("POST", "/origin-resource/form.pl", "HTTP/1.1"),
        &[
            b"Host: www.origin-server.com",
            b"Accept: text/html, text/plain",
            b"Accept-Encoding: compress",
            b"Pragma: no-cache",
        ],
    );
    assert_eq!(h.body, Some(BodyKind::Request));
    assert_eq!(ev[1], data(b"I am posting this information."));
    assert_eq!(ev[2], end());
}

#[test]
fn rfc_example_2_response() {
    let ev = decode("rfc3507-ex2-reqmod-response.icap");
    assert_eq!(ev.len(), 3);
    let h = res_head(&ev[0]);
    assert_eq!(h.status.as_u16(), 200);
    assert_eq!(
        fields(&h.headers),
        rfc_res_fields(b"Encapsulated: req-hdr=0, req-body=244")
    );
    check_http_req(
        h.http_request.as_ref().unwrap(),
        ("POST", "/origin-resource/form.pl", "HTTP/1.1"),
        &[
            b"Host: www.origin-server.com",
            b"Via: 1.0 icap-server.net (ICAP Example ReqMod Service 1.1)",
            b"Accept: text/html, text/plain, image/gif",
            b"Accept-Encoding: gzip, compress",
            b"Pragma: no-cache",
            b"Content-Length: 45",
        ],
    );
    assert_eq!(h.body, Some(BodyKind::Request));
    assert_eq!(
        ev[1],
        data(b"I am posting this information.  ICAP powered!")
    );
    assert_eq!(ev[2], end());
}

#[test]
fn rfc_example_3_request() {
    let ev = decode("rfc3507-ex3-reqmod-request.icap");
    assert_eq!(ev.len(), 2);
    let h = req_head(&ev[0]);
    assert_eq!(h.uri.service(), "content-filter");
    assert_eq!(
        fields(&h.headers),
        expect_fields(&[
            b"Host: icap-server.net",
            b"Encapsulated: req-hdr=0, null-body=119"
        ])
    );
    check_http_req(
        h.http_request.as_ref().unwrap(),
        ("GET", "/naughty-content", "HTTP/1.1"),
        &[
            b"Host: www.naughty-site.com",
            b"Accept: text/html, text/plain",
            b"Accept-Encoding: compress",
        ],
    );
    assert_eq!(h.body, None);
    assert_eq!(ev[1], end());
}

#[test]
fn rfc_example_3_response() {
    let ev = decode("rfc3507-ex3-reqmod-response.icap");
    assert_eq!(ev.len(), 3);
    let h = res_head(&ev[0]);
    assert_eq!(
        fields(&h.headers),
        rfc_res_fields(b"Encapsulated: res-hdr=0, res-body=213")
    );
    assert_eq!(h.http_request, None);
    check_http_res(
        h.http_response.as_ref().unwrap(),
        ("HTTP/1.1", 403, "Forbidden"),
        &[
            b"Date: Wed, 08 Nov 2000 16:02:10 GMT",
            b"Server: Apache/1.3.12 (Unix)",
            b"Last-Modified: Thu, 02 Nov 2000 13:51:37 GMT",
            b"ETag: \"63600-1989-3a017169\"",
            b"Content-Length: 58",
            b"Content-Type: text/html",
        ],
    );
    assert_eq!(h.body, Some(BodyKind::Response));
    assert_eq!(
        ev[1],
        data(b"Sorry, you are not allowed to access that naughty content.")
    );
    assert_eq!(ev[2], end());
    // A bare 403 block page with no vendor header still counts, so a block is never lost.
    assert_eq!(
        verdict::threats(h),
        vec![threat(
            "unnamed threat (HTTP 403 block page)",
            ThreatSource::HttpBlock
        )]
    );
}

#[test]
fn rfc_example_4_request() {
    let ev = decode("rfc3507-ex4-respmod-request.icap");
    assert_eq!(ev.len(), 3);
    let h = req_head(&ev[0]);
    assert_eq!(h.method, Method::Respmod);
    assert_eq!(h.uri.as_bytes(), b"icap://icap.example.org/satisf");
    assert_eq!(
        fields(&h.headers),
        expect_fields(&[
            b"Host: icap.example.org",
            b"Encapsulated: req-hdr=0, res-hdr=137, res-body=296"
        ])
    );
    check_http_req(
        h.http_request.as_ref().unwrap(),
        ("GET", "/origin-resource", "HTTP/1.1"),
        &[
            b"Host: www.origin-server.com",
            b"Accept: text/html, text/plain, image/gif",
            b"Accept-Encoding: gzip, compress",
        ],
    );
    check_http_res(
        h.http_response.as_ref().unwrap(),
        ("HTTP/1.1", 200, "OK"),
        &[
            b"Date: Mon, 10 Jan 2000 09:52:22 GMT",
            b"Server: Apache/1.3.6 (Unix)",
            b"ETag: \"63840-1ab7-378d415b\"",
            b"Content-Type: text/html",
            b"Content-Length: 51",
        ],
    );
    assert_eq!(h.body, Some(BodyKind::Response));
    let enc = h.encapsulated();
    assert_eq!(enc.offset(Section::ResHdr), Some(137));
    assert_eq!(enc.body(), (Section::ResBody, 296));
    assert_eq!(
        ev[1],
        data(b"This is data that was returned by an origin server.")
    );
    assert_eq!(ev[2], end());
}

#[test]
fn rfc_example_4_response() {
    let ev = decode("rfc3507-ex4-respmod-response.icap");
    assert_eq!(ev.len(), 3);
    let h = res_head(&ev[0]);
    assert_eq!(
        fields(&h.headers),
        rfc_res_fields(b"Encapsulated: res-hdr=0, res-body=222")
    );
    check_http_res(
        h.http_response.as_ref().unwrap(),
        ("HTTP/1.1", 200, "OK"),
        &[
            b"Date: Mon, 10 Jan 2000  09:55:21 GMT",
            b"Via: 1.0 icap.example.org (ICAP Example RespMod Service 1.1)",
            b"Server: Apache/1.3.6 (Unix)",
            b"ETag: \"63840-1ab7-378d415b\"",
            b"Content-Type: text/html",
            b"Content-Length: 92",
        ],
    );
    assert_eq!(
        ev[1],
        data(
            b"This is data that was returned by an origin server, but with\r\n\
              value added by an ICAP server."
        )
    );
    assert_eq!(ev[2], end());
    assert_eq!(verdict::threats(h), vec![]);
}

#[test]
fn rfc_example_5_options_request() {
    let ev = decode("rfc3507-ex5-options-request.icap");
    assert_eq!(ev.len(), 2);
    let h = req_head(&ev[0]);
    assert_eq!(h.method, Method::Options);
    assert_eq!(h.uri.host(), "icap.server.net");
    assert_eq!(h.uri.service(), "sample-service");
    assert_eq!(
        fields(&h.headers),
        expect_fields(&[
            b"Host: icap.server.net",
            b"User-Agent: BazookaDotCom-ICAP-Client-Library/2.3"
        ])
    );
    assert_eq!(
        (&h.http_request, &h.http_response, h.body),
        (&None, &None, None)
    );
    assert_eq!(ev[1], end());
}

#[test]
fn rfc_example_5_options_response() {
    let ev = decode("rfc3507-ex5-options-response.icap");
    assert_eq!(ev.len(), 2);
    let h = res_head(&ev[0]);
    assert_eq!(h.status.as_u16(), 200);
    assert_eq!(h.body, None);
    let o = OptionsResponse::from_head(h).unwrap();
    assert_eq!(o.methods, vec![Method::Respmod]);
    assert_eq!(o.service.as_deref(), Some("FOO Tech Server 1.0"));
    assert_eq!(o.istag.as_deref(), Some("W3E4R7U9-L2E4-2"));
    assert_eq!(o.max_connections, Some(1000));
    assert_eq!(o.options_ttl, Some(Duration::from_secs(7200)));
    assert_eq!(o.preview, Some(2048));
    assert_eq!(o.transfer_complete, ["asp", "bat", "exe", "com"]);
    assert_eq!(o.transfer_ignore, ["html"]);
    assert_eq!(o.transfer_preview, ["*"]);
    assert!(o.allow_204 && !o.allow_206 && !o.allow_trailers);
    assert_eq!(o.service_id, None);
    assert_eq!(o.headers.len(), 12);
    assert_eq!(o.transfer_for("exe"), Transfer::Complete);
    assert_eq!(o.transfer_for("HTML"), Transfer::Ignore);
    assert_eq!(o.transfer_for("pdf"), Transfer::Preview);
    assert_eq!(ev[1], end());
}

#[test]
fn options_response_with_every_typed_field() {
    let ev = decode("options-response-full.icap");
    assert_eq!(ev.len(), 2);
    let h = res_head(&ev[0]);
    let o = OptionsResponse::from_head(h).unwrap();
    assert_eq!(o.methods, vec![Method::Respmod, Method::Reqmod]);
    assert_eq!(o.service.as_deref(), Some("Example AV Gateway 2.1"));
    assert_eq!(o.istag.as_deref(), Some("avgw-20240604"));
    assert_eq!(o.max_connections, Some(250));
    assert_eq!(o.options_ttl, Some(Duration::from_secs(3600)));
    assert_eq!(o.preview, Some(4096));
    assert_eq!(o.transfer_preview, ["*"]);
    assert_eq!(o.transfer_ignore, ["jpg", "png", "gif"]);
    assert_eq!(o.transfer_complete, ["exe", "dll", "zip"]);
    assert!(o.allow_204 && o.allow_206 && !o.allow_trailers);
    assert_eq!(o.service_id.as_deref(), Some("avgw"));
    assert!(o.supports(Method::Reqmod) && !o.supports(Method::Options));
    assert_eq!(o.transfer_for("PNG"), Transfer::Ignore);
    assert_eq!(o.transfer_for("zip"), Transfer::Complete);
    assert_eq!(o.transfer_for("docx"), Transfer::Preview);
    assert_eq!(
        o.headers.get("X-Include").unwrap().as_bytes(),
        b"X-Client-IP, X-Authenticated-User"
    );
    // The typed fields survive to_head and back.
    let back = OptionsResponse::from_head(&o.to_head().unwrap()).unwrap();
    let strip = |mut o: OptionsResponse| {
        o.headers = icap_proto::Headers::new();
        o
    };
    assert_eq!(strip(back), strip(o));
}

#[test]
fn cicap_virus_scan_infected() {
    let ev = decode("cicap-virus-scan-infected.icap");
    assert_eq!(ev.len(), 3);
    let h = res_head(&ev[0]);
    assert_eq!((h.status.as_u16(), h.reason()), (200, &b"OK"[..]));
    assert_eq!(
        fields(&h.headers),
        expect_fields(&[
            b"Server: C-ICAP/0.5.10",
            b"Connection: keep-alive",
            b"ISTag: \"CI0001-2-virus_scan-1\"",
            b"X-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Test-Signature;",
            b"X-Violations-Found: 1\r\n\t-\r\n\tEicar-Test-Signature\r\n\t0\r\n\t0",
            b"Encapsulated: res-hdr=0, res-body=161",
        ])
    );
    assert_eq!(
        h.headers
            .get("x-violations-found")
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        [&b"1"[..], b"-", b"Eicar-Test-Signature", b"0", b"0"]
    );
    let res = h.http_response.as_ref().unwrap();
    check_http_res(
        res,
        ("HTTP/1.0", 403, "Forbidden"),
        &[
            b"Server: C-ICAP",
            b"Connection: close",
            b"Content-Type: text/html",
            b"Content-Language: en",
            b"Date: Tue, 04 Jun 2024 10:15:42 GMT",
            b"Via: 1.0 cicap",
        ],
    );
    assert_eq!(res.encoded_len(), 161);
    let Ev::Data(page) = &ev[1] else {
        panic!("{:?}", ev[1])
    };
    assert_eq!(page.len(), 0xef);
    assert!(page.starts_with(b"<html>\n<head><title>VIRUS FOUND</title>"));
    assert!(page.ends_with(b"</body>\n</html>\n"));
    assert_eq!(ev[2], end());
    assert_eq!(
        verdict::threats(h),
        vec![Threat {
            kind: Some(0),
            resolution: Some(2),
            file: Some("-".into()),
            problem_id: Some("0".into()),
            ..threat("Eicar-Test-Signature", ThreatSource::InfectionFound)
        }]
    );
}

#[test]
fn cicap_virus_scan_clean_204() {
    let ev = decode("cicap-virus-scan-clean-204.icap");
    assert_eq!(ev.len(), 2);
    let h = res_head(&ev[0]);
    assert_eq!((h.status.as_u16(), h.reason()), (204, &b"Unmodified"[..]));
    assert!(!h.headers.contains("Encapsulated"));
    assert_eq!(h.istag(), Some(&b"CI0001-2-virus_scan-1"[..]));
    assert_eq!(
        (&h.http_request, &h.http_response, h.body),
        (&None, &None, None)
    );
    assert_eq!(verdict::threats(h), vec![]);
    assert_eq!(ev[1], end());
}

#[test]
fn symantec_201_violations() {
    let ev = decode("symantec-201-violations.icap");
    assert_eq!(ev.len(), 3);
    let h = res_head(&ev[0]);
    assert_eq!((h.status.as_u16(), h.reason()), (201, &b"Created"[..]));
    assert_eq!(
        h.headers.get("X-Violations-Found").unwrap().as_bytes(),
        b"1\r\n\tinvoice.zip/docs/eicar.com\r\n\tEICAR Test String\r\n\t41129\r\n\t2"
    );
    assert_eq!(
        h.headers.get("Service").unwrap().as_bytes(),
        b"Symantec Protection Engine/8.2.2.45"
    );
    check_http_res(
        h.http_response.as_ref().unwrap(),
        ("HTTP/1.1", 403, "Forbidden"),
        &[
            b"Content-Type: text/html; charset=utf-8",
            b"Cache-Control: no-cache",
            b"Content-Length: 94",
        ],
    );
    assert_eq!(
        ev[1],
        data(
            b"<html><body>Access denied: EICAR Test String found in \
              invoice.zip/docs/eicar.com</body></html>"
        )
    );
    assert_eq!(ev[2], end());
    assert_eq!(
        verdict::threats(h),
        vec![Threat {
            resolution: Some(2),
            file: Some("invoice.zip/docs/eicar.com".into()),
            problem_id: Some("41129".into()),
            ..threat("EICAR Test String", ThreatSource::ViolationsFound)
        }]
    );
}

#[test]
fn kaspersky_clean_204() {
    let ev = decode("kaspersky-clean-204.icap");
    assert_eq!(ev.len(), 2);
    let h = res_head(&ev[0]);
    assert_eq!(h.status.as_u16(), 204);
    assert_eq!(
        h.headers.get("X-Virus-ID").unwrap().as_bytes(),
        b"no threats"
    );
    assert_eq!(verdict::threats(h), vec![]);
    assert_eq!(ev[1], end());
}

#[test]
fn kaspersky_infected_name_with_colon() {
    let ev = decode("kaspersky-infected.icap");
    assert_eq!(ev.len(), 3);
    let h = res_head(&ev[0]);
    check_http_res(
        h.http_response.as_ref().unwrap(),
        ("HTTP/1.1", 403, "Forbidden"),
        &[b"Content-Type: text/html", b"Connection: close"],
    );
    assert_eq!(
        ev[1],
        data(b"<html><body><h1>Blocked</h1>HEUR:Trojan.Win32.Generic</body></html>")
    );
    assert_eq!(ev[2], end());
    assert_eq!(
        verdict::threats(h),
        vec![threat("HEUR:Trojan.Win32.Generic", ThreatSource::VirusId)]
    );
}

#[test]
fn sophos_virus_id_and_x_blocked() {
    let ev = decode("sophos-infected.icap");
    assert_eq!(ev.len(), 3);
    let h = res_head(&ev[0]);
    check_http_res(
        h.http_response.as_ref().unwrap(),
        ("HTTP/1.1", 403, "Forbidden"),
        &[
            b"Content-Type: text/html",
            b"X-Blocked: Virus EICAR-AV-Test found",
            b"Content-Length: 47",
        ],
    );
    assert_eq!(
        ev[1],
        data(b"<html><body>Virus EICAR-AV-Test</body></html>\r\n")
    );
    assert_eq!(
        verdict::threats(h),
        vec![threat("EICAR-AV-Test", ThreatSource::VirusId)]
    );
    // Without the ICAP header, the embedded X-Blocked names the block.
    let mut only_http = h.clone();
    only_http.headers.remove("X-Virus-ID");
    assert_eq!(
        verdict::threats(&only_http),
        vec![threat("Virus EICAR-AV-Test found", ThreatSource::HttpBlock)]
    );
}

#[test]
fn mcafee_embedded_403_only() {
    let ev = decode("mcafee-403-virusfound.icap");
    assert_eq!(ev.len(), 3);
    let h = res_head(&ev[0]);
    assert_eq!(
        fields(&h.headers),
        expect_fields(&[
            b"ISTag: \"MWG-11.2\"",
            b"Encapsulated: res-hdr=0, res-body=96"
        ])
    );
    check_http_res(
        h.http_response.as_ref().unwrap(),
        ("HTTP/1.1", 403, "VirusFound"),
        &[
            b"Content-Type: text/html",
            b"Cache-Control: no-cache",
            b"Connection: close",
        ],
    );
    assert_eq!(
        verdict::threats(h),
        vec![threat("VirusFound (HTTP 403)", ThreatSource::HttpBlock)]
    );
    assert_eq!(ev[2], end());
}

#[test]
fn threat_name_with_spaces_and_no_trailing_semicolon() {
    let ev = decode("threat-name-spaces.icap");
    assert_eq!(ev.len(), 2);
    let h = res_head(&ev[0]);
    assert_eq!(
        h.headers.get("Encapsulated").unwrap().as_bytes(),
        b"res-hdr=0, null-body=45"
    );
    check_http_res(
        h.http_response.as_ref().unwrap(),
        ("HTTP/1.1", 403, "Forbidden"),
        &[b"Content-Length: 0"],
    );
    assert_eq!(h.body, None);
    assert_eq!(
        verdict::threats(h),
        vec![Threat {
            kind: Some(0),
            resolution: Some(2),
            ..threat("Trojan horse Generic36.BXZ", ThreatSource::InfectionFound)
        }]
    );
    assert_eq!(ev[1], end());
}

#[test]
fn eset_localized_non_ascii() {
    let ev = decode("eset-localized.icap");
    assert_eq!(ev.len(), 3);
    let h = res_head(&ev[0]);
    assert_eq!(
        h.headers.get("X-Infection-Found").unwrap().as_bytes(),
        "Type=0; Resolution=0; Threat=Eicar testovací soubor;".as_bytes()
    );
    check_http_res(
        h.http_response.as_ref().unwrap(),
        ("HTTP/1.1", 403, "Zakázáno"),
        &[b"Content-Type: text/plain; charset=utf-8"],
    );
    assert_eq!(
        ev[1],
        data("Soubor byl zablokován: Eicar testovací soubor\n".as_bytes())
    );
    assert_eq!(
        verdict::threats(h),
        vec![Threat {
            kind: Some(0),
            resolution: Some(0),
            ..threat("Eicar testovací soubor", ThreatSource::InfectionFound)
        }]
    );
}

#[test]
fn squid_options_without_encapsulated() {
    let ev = decode("squid-options-request.icap");
    assert_eq!(ev.len(), 2);
    let h = req_head(&ev[0]);
    assert_eq!(h.method, Method::Options);
    assert_eq!(h.uri.host(), "127.0.0.1");
    assert_eq!(h.uri.explicit_port(), Some(1344));
    assert_eq!(h.uri.service(), "avscan");
    assert_eq!(
        fields(&h.headers),
        expect_fields(&[b"Host: 127.0.0.1:1344", b"Allow: 206"])
    );
    assert_eq!(h.body, None);
    assert_eq!(ev[1], end());
}

#[test]
fn reqmod_preview_with_ieof() {
    let ev = decode("reqmod-preview-ieof.icap");
    let h = req_head(&ev[0]);
    assert_eq!(h.method, Method::Reqmod);
    assert_eq!(h.uri.port(), 1344);
    assert_eq!(h.preview(), Ok(Some(1024)));
    assert!(h.allows_204());
    assert_eq!(
        h.headers.get("X-Client-IP").unwrap().as_bytes(),
        b"192.0.2.10"
    );
    check_http_req(
        h.http_request.as_ref().unwrap(),
        ("POST", "/upload", "HTTP/1.1"),
        &[
            b"Host: files.example.com",
            b"Content-Type: text/plain",
            b"Content-Length: 26",
        ],
    );
    assert_eq!(h.body, Some(BodyKind::Request));
    assert_eq!(
        ev[1..],
        [
            data(b"abcdefghijklmnopqrstuvwxyz"),
            Ev::PreviewEnd { ieof: true },
            end_ieof()
        ]
    );
}

#[test]
fn respmod_preview_with_ieof() {
    let ev = decode("respmod-preview-ieof.icap");
    let h = req_head(&ev[0]);
    assert_eq!(h.method, Method::Respmod);
    assert_eq!(h.uri.scheme(), Scheme::Icaps);
    assert_eq!(h.uri.port(), 11344);
    assert_eq!(h.preview(), Ok(Some(4096)));
    check_http_req(
        h.http_request.as_ref().unwrap(),
        ("GET", "/small.txt", "HTTP/1.1"),
        &[b"Host: www.example.com"],
    );
    check_http_res(
        h.http_response.as_ref().unwrap(),
        ("HTTP/1.1", 200, "OK"),
        &[b"Content-Type: text/plain", b"Content-Length: 11"],
    );
    assert_eq!(
        ev[1..],
        [
            data(b"hello world"),
            Ev::PreviewEnd { ieof: true },
            end_ieof()
        ]
    );
}

#[test]
fn respmod_preview_then_rest_after_continue() {
    let ev = decode("respmod-preview-continue.icap");
    let eicar: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    let h = req_head(&ev[0]);
    assert_eq!(h.preview(), Ok(Some(10)));
    assert_eq!(
        h.http_response
            .as_ref()
            .unwrap()
            .headers
            .get("Content-Length")
            .unwrap()
            .to_u64(),
        Some(eicar.len() as u64)
    );
    assert_eq!(
        ev[1..],
        [
            data(&eicar[..10]),
            Ev::PreviewEnd { ieof: false },
            data(&eicar[10..40]),
            data(&eicar[40..]),
            end()
        ]
    );
}

#[test]
fn continue_then_final_response_on_one_stream() {
    let ev = decode("continue-then-infected.icap");
    assert_eq!(ev.len(), 4);
    let cont = res_head(&ev[0]);
    assert_eq!(
        (cont.status.as_u16(), cont.reason()),
        (100, &b"Continue"[..])
    );
    assert!(cont.headers.is_empty());
    assert_eq!(ev[1], end());
    let h = res_head(&ev[2]);
    assert_eq!(h.status.as_u16(), 200);
    assert_eq!(
        verdict::threats(h),
        vec![Threat {
            kind: Some(0),
            resolution: Some(2),
            ..threat("Eicar-Test-Signature", ThreatSource::InfectionFound)
        }]
    );
    assert_eq!(ev[3], end());
}

#[test]
fn partial_content_206_use_original_body() {
    let ev = decode("respmod-206-use-original-body.icap");
    let h = res_head(&ev[0]);
    assert_eq!(
        (h.status.as_u16(), h.reason()),
        (206, &b"Partial Content"[..])
    );
    assert_eq!(
        ev[1..],
        [
            data(b"<!-- scanned -->"),
            Ev::End(BodyEnd {
                use_original_body: Some(0),
                ..BodyEnd::default()
            })
        ]
    );
}

#[test]
fn lenient_noncanonical_shapes() {
    let ev = decode("lenient-noncanonical.icap");
    assert_eq!(ev.len(), 3);
    let h = res_head(&ev[0]);
    assert_eq!(
        fields(&h.headers),
        vec![
            ("ISTag".to_owned(), b"\"lenient-1\"".to_vec()),
            ("X-Folded".to_owned(), b"first\r\n   second".to_vec()),
            ("Encapsulated".to_owned(), b"res-hdr=0,res-body=45".to_vec()),
        ]
    );
    assert_eq!(
        h.headers
            .get("X-Folded")
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        [&b"first"[..], b"second"]
    );
    assert_eq!(ev[1], data(b"0123456789"));
    let Ev::End(end) = &ev[2] else {
        panic!("{:?}", ev[2])
    };
    assert_eq!(fields(&end.trailers), expect_fields(&[b"X-Trailer: t"]));
}

/// The `Encapsulated` value as the encoder writes it, so that a fixture written with other
/// spacing compares equal after a round trip.
fn canonical_encapsulated(events: &[Ev]) -> Vec<Ev> {
    let fix = |headers: &mut icap_proto::Headers| {
        if let Some(v) = headers.get("Encapsulated") {
            let canon = Encapsulated::parse(v.as_bytes()).unwrap().to_string();
            headers.set(
                icap_proto::HeaderName::from_static("Encapsulated"),
                canon.as_str().try_into().unwrap(),
            );
        }
    };
    events
        .iter()
        .map(|e| match e {
            Ev::Head(Msg::Request(h)) => {
                let mut h = h.clone();
                fix(&mut h.headers);
                Ev::Head(Msg::Request(h))
            }
            Ev::Head(Msg::Response(h)) => {
                let mut h = h.clone();
                fix(&mut h.headers);
                Ev::Head(Msg::Response(h))
            }
            other => other.clone(),
        })
        .collect()
}

#[test]
fn every_fixture_reencodes() {
    let mut canonical = 0;
    for &(name, kind, is_canonical) in FIXTURES {
        let bytes = fixture(name);
        let events = decode(name);
        let encoded = encode_events(&events, method_of(kind));
        let again = feed_whole(kind, &encoded);
        assert_eq!(again.error, None, "{name}");
        assert_eq!(again.left, 0, "{name}");
        if is_canonical {
            assert_eq!(
                String::from_utf8_lossy(&encoded),
                String::from_utf8_lossy(&bytes),
                "{name}: re-encoding differs"
            );
            assert_eq!(&encoded[..], &bytes[..], "{name}");
            assert_eq!(again.events, events, "{name}");
            canonical += 1;
        } else {
            assert_ne!(&encoded[..], &bytes[..], "{name} is marked non-canonical");
            assert_eq!(
                merge_data(&canonical_encapsulated(&again.events)),
                merge_data(&canonical_encapsulated(&events)),
                "{name}: decode(encode(decode(x))) != decode(x)"
            );
        }
    }
    assert_eq!(canonical, FIXTURES.len() - 1);
}

#[test]
fn fixtures_list_matches_directory() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| {
            std::path::Path::new(n)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("icap"))
        })
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|(n, _, _)| (*n).to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn kind_of_each_fixture_matches_its_first_line() {
    for &(name, kind, _) in FIXTURES {
        let bytes = fixture(name);
        let first = bytes.strip_prefix(b"\r\n").unwrap_or(&bytes);
        assert_eq!(
            first.starts_with(b"ICAP/1.0 "),
            kind != Kind::Request,
            "{name}"
        );
    }
}
