//! apikey: admits only requests carrying a known API key; answers 401 itself otherwise, strips the
//! key before the request goes upstream, and names the consumer in an `x-consumer` header both
//! ways. The reference filter: every SDK language implements this same behaviour.
//!
//! Config: `{"header": "X-API-Key", "keys": {"<key>": "<consumer>", ...}}`

use sluice_filter::json::Json;
use sluice_filter::{export_filter, Filter, Next, Request, Response};

pub struct ApiKey {
    header: String,
    keys: Vec<(String, String)>, // (key, consumer), sorted by key; req_ctx is index + 1
}

impl ApiKey {
    pub fn from_config(cfg: &[u8]) -> ApiKey {
        let doc = Json::new(cfg);
        let header = doc.get("header").and_then(|v| v.as_str()).unwrap_or_else(|| "x-api-key".to_string());
        let mut keys: Vec<(String, String)> = doc
            .get("keys")
            .map(|k| k.members())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.as_str().expect("apikey: consumer names must be strings")))
            .collect();
        keys.sort();
        ApiKey { header, keys }
    }
}

impl Filter for ApiKey {
    fn handle_request(&mut self, req: &Request, resp: &Response) -> Next {
        let keys = &self.keys;
        // Compare against the scratch-buffer view: no copy of the presented key.
        let found = req.headers().with(&self.header, |v| v.and_then(|v| keys.iter().position(|(k, _)| k.as_bytes() == v)));
        if let Some(i) = found {
            req.headers().remove(&self.header);
            req.headers().set("x-consumer", &self.keys[i].1);
            return Next::Continue(i as u32 + 1);
        }
        resp.set_status(401);
        resp.headers().set("content-type", "text/plain; charset=utf-8");
        resp.headers().set("www-authenticate", "ApiKey");
        resp.body().write(b"invalid API key\n");
        Next::Respond
    }

    fn handle_response(&mut self, req_ctx: u32, _: &Request, resp: &Response, is_error: bool) {
        if is_error || req_ctx == 0 {
            return;
        }
        if let Some((_, consumer)) = self.keys.get(req_ctx as usize - 1) {
            resp.headers().set("x-consumer", consumer);
        }
    }
}

export_filter!(|| ApiKey::from_config(&sluice_filter::config()));

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_filter::testing::{self, Host};

    fn filter() -> ApiKey {
        ApiKey::from_config(br#"{"header":"X-API-Key","keys":{"beta":"team-b","alpha":"team-a"}}"#)
    }

    #[test]
    fn rejects_missing_and_wrong_keys() {
        for key in [None, Some("gamma")] {
            let mut h = Host::new();
            if let Some(k) = key {
                h.req_headers.push(("X-API-Key".into(), k.into()));
            }
            testing::install(h);
            let out = testing::run(&mut filter(), |_| panic!("upstream called"));
            let h = testing::host();
            assert!(!out.next);
            assert_eq!(h.status, 401);
            assert_eq!(h.resp_body, b"invalid API key\n");
        }
    }

    #[test]
    fn admits_known_keys() {
        let mut h = Host::new();
        h.req_headers.push(("x-api-key".into(), "beta".into()));
        testing::install(h);
        let out = testing::run(&mut filter(), |h| {
            assert_eq!(Host::get(&h.req_headers, "x-consumer").as_deref(), Some("team-b"));
            assert!(Host::get(&h.req_headers, "x-api-key").is_none(), "key forwarded upstream");
        });
        assert_eq!(out, testing::Outcome { next: true, req_ctx: 2 });
        assert_eq!(Host::get(&testing::host().resp_headers, "X-Consumer").as_deref(), Some("team-b"));
    }
}
