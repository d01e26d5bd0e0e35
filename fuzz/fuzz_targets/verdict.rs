//! Verdict headers: arbitrary ICAP and embedded HTTP header fields, most of them the ones
//! antivirus servers use, with free-form or vendor-shaped values. `verdict::threats`,
//! `InfectionFound::parse` and `ViolationsFound::parse` must not panic, and
//! `check_verdict`'s invariants hold (a present `X-Infection-Found` always yields a threat).
#![no_main]

use arbitrary::Arbitrary;
use icap_proto::{HeaderName, HeaderValue, Headers, HttpResponseHead, ResponseHead, StatusCode};
use icap_proto_fuzz::check_verdict;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum FieldName {
    InfectionFound,
    ViolationsFound,
    VirusId,
    VirusName,
    BlockReason,
    Blocked,
    IsTag,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Raw(Vec<u8>),
    Folded(Vec<Vec<u8>>),
    Infection {
        kind: Option<Vec<u8>>,
        resolution: Option<Vec<u8>>,
        threat: Option<Vec<u8>>,
        trailing_semicolon: bool,
    },
    Violations {
        count: Vec<u8>,
        lines: Vec<Vec<u8>>,
    },
}

#[derive(Arbitrary, Debug)]
struct Field {
    name: FieldName,
    upper: bool,
    value: Value,
}

#[derive(Arbitrary, Debug)]
struct Input {
    status: u16,
    icap: Vec<Field>,
    http: Option<(u16, Vec<u8>, Vec<Field>)>,
}

fn name(f: &Field) -> Option<HeaderName> {
    let n = match &f.name {
        FieldName::InfectionFound => "X-Infection-Found",
        FieldName::ViolationsFound => "X-Violations-Found",
        FieldName::VirusId => "X-Virus-ID",
        FieldName::VirusName => "X-Virus-Name",
        FieldName::BlockReason => "X-Block-Reason",
        FieldName::Blocked => "X-Blocked",
        FieldName::IsTag => "ISTag",
        FieldName::Other(s) => s,
    };
    let n = if f.upper {
        n.to_ascii_uppercase()
    } else {
        n.to_ascii_lowercase()
    };
    HeaderName::new(n.into_bytes()).ok()
}

fn value(v: &Value) -> Option<HeaderValue> {
    match v {
        Value::Raw(b) => HeaderValue::new(b.clone()).ok(),
        Value::Folded(lines) => HeaderValue::from_lines(lines).ok(),
        Value::Infection {
            kind,
            resolution,
            threat,
            trailing_semicolon,
        } => {
            let mut s = Vec::new();
            for (key, val) in [
                ("Type=", kind),
                ("Resolution=", resolution),
                ("Threat=", threat),
            ] {
                if let Some(val) = val {
                    if !s.is_empty() {
                        s.extend_from_slice(b"; ");
                    }
                    s.extend_from_slice(key.as_bytes());
                    s.extend_from_slice(val);
                }
            }
            if *trailing_semicolon {
                s.push(b';');
            }
            HeaderValue::new(s).ok()
        }
        Value::Violations { count, lines } => {
            let mut all = vec![count.clone()];
            all.extend(lines.iter().cloned());
            HeaderValue::from_lines(all).ok()
        }
    }
}

fn headers(fields: &[Field]) -> Headers {
    let mut h = Headers::new();
    for f in fields {
        if let (Some(n), Some(v)) = (name(f), value(&f.value)) {
            h.push(n, v);
        }
    }
    h
}

fuzz_target!(|input: Input| {
    let Ok(status) = StatusCode::new(input.status % 1000) else {
        return;
    };
    let mut head = ResponseHead::new(status);
    head.headers = headers(&input.icap);
    if let Some((code, reason, fields)) = &input.http
        && let Ok(reason) = std::str::from_utf8(reason)
        && let Ok(mut res) = HttpResponseHead::new(code % 1000, reason)
    {
        res.headers = headers(fields);
        head.http_response = Some(res);
    }
    check_verdict(&head);
});
