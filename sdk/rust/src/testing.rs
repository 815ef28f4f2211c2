//! A fake host for unit-testing filters natively (`cargo test`): set up a request with
//! [`Host::new`], run a filter with [`run`], then inspect the host's fields.
//!
//! ```ignore
//! let mut h = Host::new();
//! h.req_headers.push(("X-API-Key".into(), "alpha".into()));
//! testing::install(h);
//! let res = testing::run(&mut MyFilter::new(), |_| {});
//! ```
//! The fake follows the ABI: fit-or-nothing buffers, lower-case names, NUL-terminated lists.

use crate::{Filter, Next, Request, Response};
use std::cell::RefCell;

/// The fake host's state for one request and its response.
#[derive(Clone, Debug, Default)]
pub struct Host {
    pub config: Vec<u8>,
    pub enabled: u32,
    pub method: String,
    pub uri: String,
    pub protocol: String,
    pub source_addr: String,
    pub req_headers: Vec<(String, String)>,
    pub resp_headers: Vec<(String, String)>,
    pub req_body: Vec<u8>,
    pub resp_body: Vec<u8>,
    pub status: u32,
    pub logs: Vec<String>,
    req_read: usize,
    resp_read: usize,
    req_written: bool,
    resp_written: bool,
}

impl Host {
    /// A GET / request from 127.0.0.1 with no headers, status 200.
    pub fn new() -> Host {
        Host {
            method: "GET".into(),
            uri: "/".into(),
            protocol: "HTTP/1.1".into(),
            source_addr: "127.0.0.1:40000".into(),
            status: 200,
            ..Host::default()
        }
    }

    /// The first value of a header, matched case-insensitively.
    pub fn get(headers: &[(String, String)], name: &str) -> Option<String> {
        headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }
}

thread_local! {
    static HOST: RefCell<Host> = RefCell::new(Host::new());
}

/// Installs `h` as the current fake host.
pub fn install(h: Host) {
    HOST.with(|c| *c.borrow_mut() = h);
}

/// A copy of the current fake host's state.
pub fn host() -> Host {
    HOST.with(|c| c.borrow().clone())
}

/// What `handle_request` returned.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    pub next: bool,
    pub req_ctx: u32,
}

/// Runs `f` on the installed host like the gateway does: `handle_request`; then, if it continued,
/// `upstream` (which may set status, response headers and body) and `handle_response`.
pub fn run<F: Filter>(f: &mut F, upstream: impl FnOnce(&mut Host)) -> Outcome {
    HOST.with(|c| c.borrow_mut().start_phase());
    match f.handle_request(&Request, &Response) {
        Next::Respond => Outcome { next: false, req_ctx: 0 },
        Next::Continue(req_ctx) => {
            HOST.with(|c| {
                let mut h = c.borrow_mut();
                upstream(&mut h);
                h.start_phase();
            });
            f.handle_response(req_ctx, &Request, &Response, false);
            Outcome { next: true, req_ctx }
        }
    }
}

impl Host {
    fn start_phase(&mut self) {
        self.req_written = false;
        self.resp_written = false;
        self.resp_read = 0;
    }
}

pub(crate) mod fake {
    use super::HOST;

    fn with<T>(f: impl FnOnce(&mut super::Host) -> T) -> T {
        HOST.with(|c| f(&mut c.borrow_mut()))
    }

    fn put(buf: &mut [u8], v: &[u8]) -> u32 {
        if v.len() <= buf.len() {
            buf[..v.len()].copy_from_slice(v);
        }
        v.len() as u32
    }

    fn list(buf: &mut [u8], items: &[String]) -> u64 {
        if items.is_empty() {
            return 0;
        }
        let mut all = Vec::new();
        for it in items {
            all.extend_from_slice(it.as_bytes());
            all.push(0);
        }
        ((items.len() as u64) << 32) | put(buf, &all) as u64
    }

    fn headers(h: &mut super::Host, kind: u32) -> &mut Vec<(String, String)> {
        match kind {
            0 => &mut h.req_headers,
            1 => &mut h.resp_headers,
            _ => panic!("fake host: trailers are not supported"),
        }
    }

    pub fn h_enable_features(f: u32) -> u32 {
        with(|h| {
            h.enabled |= f & 3;
            h.enabled
        })
    }
    pub fn h_get_config(b: &mut [u8]) -> u32 { with(|h| put(b, &h.config)) }
    pub fn h_log(_level: i32, m: &str) { with(|h| h.logs.push(m.to_string())) }
    pub fn h_log_enabled(level: i32) -> bool { level >= 0 }
    pub fn h_get_method(b: &mut [u8]) -> u32 { with(|h| put(b, h.method.as_bytes())) }
    pub fn h_set_method(s: &str) { with(|h| h.method = s.to_string()) }
    pub fn h_get_uri(b: &mut [u8]) -> u32 { with(|h| put(b, if h.uri.is_empty() { b"/" } else { h.uri.as_bytes() })) }
    pub fn h_set_uri(s: &str) { with(|h| h.uri = s.to_string()) }
    pub fn h_get_protocol_version(b: &mut [u8]) -> u32 { with(|h| put(b, h.protocol.as_bytes())) }
    pub fn h_get_source_addr(b: &mut [u8]) -> u32 { with(|h| put(b, h.source_addr.as_bytes())) }
    pub fn h_get_header_names(kind: u32, b: &mut [u8]) -> u64 {
        with(|h| {
            let mut names: Vec<String> = Vec::new();
            for (n, _) in headers(h, kind).iter() {
                let n = n.to_ascii_lowercase();
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            list(b, &names)
        })
    }
    pub fn h_get_header_values(kind: u32, name: &str, b: &mut [u8]) -> u64 {
        with(|h| {
            let vals: Vec<String> =
                headers(h, kind).iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).collect();
            list(b, &vals)
        })
    }
    pub fn h_set_header_value(kind: u32, name: &str, value: &[u8]) {
        h_remove_header(kind, name);
        h_add_header_value(kind, name, value);
    }
    pub fn h_add_header_value(kind: u32, name: &str, value: &[u8]) {
        with(|h| headers(h, kind).push((name.to_string(), String::from_utf8_lossy(value).into_owned())))
    }
    pub fn h_remove_header(kind: u32, name: &str) {
        with(|h| headers(h, kind).retain(|(n, _)| !n.eq_ignore_ascii_case(name)))
    }
    pub fn h_read_body(kind: u32, b: &mut [u8]) -> u64 {
        assert!(!b.is_empty(), "fake host: read_body with buf_limit 0");
        with(|h| {
            let (body, off) = if kind == 1 { (&h.resp_body, &mut h.resp_read) } else { (&h.req_body, &mut h.req_read) };
            let n = (body.len() - *off).min(b.len());
            b[..n].copy_from_slice(&body[*off..*off + n]);
            *off += n;
            let eof = if *off >= body.len() { 1u64 } else { 0 };
            (eof << 32) | n as u64
        })
    }
    pub fn h_write_body(kind: u32, data: &[u8]) {
        with(|h| {
            let (body, written) =
                if kind == 1 { (&mut h.resp_body, &mut h.resp_written) } else { (&mut h.req_body, &mut h.req_written) };
            if !*written {
                body.clear();
                *written = true;
            }
            body.extend_from_slice(data);
        })
    }
    pub fn h_get_status_code() -> u32 { with(|h| h.status) }
    pub fn h_set_status_code(c: u32) { with(|h| h.status = c) }
}
