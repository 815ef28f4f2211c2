//! redact: masks sensitive fields of JSON request bodies before they reach the upstream. Every
//! member named in `fields`, at any depth, gets its value replaced by the mask string; the rest of
//! the document is kept byte for byte. Sets `x-redacted: <count>` when it changed something.
//!
//! Config: `{"fields": ["password", "card_number"], "mask": "***"}`

use sluice_filter::json::{skip_space, string_end, value_end, Json};
use sluice_filter::{enable_features, export_filter, features, Filter, Next, Request, Response};

pub struct Redact {
    fields: Vec<Vec<u8>>, // raw (still escaped) member names
    mask: Vec<u8>,        // JSON string literal
}

impl Redact {
    pub fn from_config(cfg: &[u8]) -> Redact {
        let doc = Json::new(cfg);
        let fields = doc.get("fields").map(|f| f.items()).unwrap_or_default();
        let mask = doc.get("mask").and_then(|m| m.as_str()).unwrap_or_else(|| "***".to_string());
        Redact {
            fields: fields.iter().filter_map(|f| f.as_str()).map(String::into_bytes).collect(),
            mask: quote(&mask),
        }
    }
}

fn quote(s: &str) -> Vec<u8> {
    let mut out = vec![b'"'];
    for c in s.bytes() {
        if c == b'"' || c == b'\\' {
            out.push(b'\\');
        }
        out.push(c);
    }
    out.push(b'"');
    out
}

/// Returns `doc` with the values of the named members replaced by `mask`, and how many were
/// replaced. Tokens are scanned without building a tree; malformed input is returned unchanged.
pub fn redact(doc: &[u8], fields: &[Vec<u8>], mask: &[u8]) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(doc.len());
    let (mut n, mut last, mut i) = (0, 0, 0);
    while i < doc.len() {
        if doc[i] != b'"' {
            i += 1;
            continue;
        }
        let end = match string_end(doc, i) {
            Some(e) => e,
            None => return (doc.to_vec(), 0),
        };
        let key = &doc[i + 1..end - 1];
        let colon = skip_space(doc, end);
        if colon < doc.len() && doc[colon] == b':' && fields.iter().any(|f| f.as_slice() == key) {
            let vs = skip_space(doc, colon + 1);
            let ve = match value_end(doc, vs) {
                Some(e) if e > vs => e,
                _ => return (doc.to_vec(), 0),
            };
            out.extend_from_slice(&doc[last..vs]);
            out.extend_from_slice(mask);
            last = ve;
            n += 1;
            i = ve;
            continue;
        }
        i = end;
    }
    out.extend_from_slice(&doc[last..]);
    (out, n)
}

impl Filter for Redact {
    fn handle_request(&mut self, req: &Request, _: &Response) -> Next {
        let json = req.headers().with("content-type", |v| {
            v.map_or(false, |v| v.windows(4).any(|w| w.eq_ignore_ascii_case(b"json")))
        });
        if !json {
            return Next::Continue(0);
        }
        // Buffering keeps the body readable for the upstream if we leave it unchanged.
        enable_features(features::BUFFER_REQUEST);
        let body = req.body().read_all();
        let (out, n) = redact(&body, &self.fields, &self.mask);
        if n > 0 {
            req.body().write(&out);
            req.headers().set("x-redacted", &n.to_string());
        }
        Next::Continue(0)
    }
}

export_filter!(|| Redact::from_config(&sluice_filter::config()));

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_filter::testing::{self, Host};

    #[test]
    fn masks_named_members() {
        let fields = vec![b"password".to_vec(), b"card".to_vec()];
        let cases: [(&str, &str); 5] = [
            (r#"{"user":"ann","password":"hunter2"}"#, r#"{"user":"ann","password":"***"}"#),
            (
                r#"{"a":{"card" : 4111111111111111, "x":1},"list":[{"password":"p\"q"}]}"#,
                r#"{"a":{"card" : "***", "x":1},"list":[{"password":"***"}]}"#,
            ),
            (r#"{"password":{"nested":true},"ok":"password"}"#, r#"{"password":"***","ok":"password"}"#),
            (r#"{"nothing":"here"}"#, r#"{"nothing":"here"}"#),
            (r#"{"password":"unterminated"#, r#"{"password":"unterminated"#),
        ];
        for (input, want) in cases.iter() {
            let (got, _) = redact(input.as_bytes(), &fields, b"\"***\"");
            assert_eq!(String::from_utf8(got).unwrap(), *want, "input {}", input);
        }
    }

    #[test]
    fn rewrites_json_bodies_only() {
        let mut f = Redact::from_config(br#"{"fields":["password"],"mask":"[hidden]"}"#);
        let mut h = Host::new();
        h.method = "POST".into();
        h.req_headers.push(("Content-Type".into(), "application/json".into()));
        h.req_body = br#"{"user":"ann","password":"hunter2"}"#.to_vec();
        testing::install(h);
        testing::run(&mut f, |h| assert_eq!(h.req_body, br#"{"user":"ann","password":"[hidden]"}"#.to_vec()));
        assert_eq!(Host::get(&testing::host().req_headers, "x-redacted").as_deref(), Some("1"));

        let mut h = Host::new();
        h.req_headers.push(("Content-Type".into(), "text/plain".into()));
        h.req_body = br#"{"password":"x"}"#.to_vec();
        testing::install(h);
        testing::run(&mut f, |_| {});
        assert_eq!(testing::host().req_body, br#"{"password":"x"}"#.to_vec());
    }
}
