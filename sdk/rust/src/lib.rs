//! Write Sluice gateway filters in Rust. A filter is a type implementing [`Filter`], exported with
//! [`export_filter!`]; build it as a `cdylib` for `wasm32-unknown-unknown` (or `wasm32-wasi`):
//!
//! ```ignore
//! use sluice_filter::{export_filter, Filter, Next, Request, Response};
//!
//! struct Hello;
//! impl Filter for Hello {
//!     fn handle_request(&mut self, req: &Request, _resp: &Response) -> Next {
//!         req.headers().set("x-hello", "world");
//!         Next::Continue(0)
//!     }
//! }
//! export_filter!(|| Hello);
//! ```
//!
//! The crate has no dependencies and builds with Rust 1.63 and later. Outside wasm32 the same API
//! talks to a fake host (module [`testing`]) so filters can be unit-tested with `cargo test`.

use std::cell::RefCell;

mod host;
pub mod json;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

/// What `handle_request` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// The filter wrote the response (or accepts an empty 200); stop here.
    Respond,
    /// Continue down the pipeline; `handle_response` later receives this request context.
    Continue(u32),
}

/// A filter. One value serves every request of one Wasm instance, one request at a time.
pub trait Filter {
    /// Inspect or change the request, or write a response and return [`Next::Respond`].
    fn handle_request(&mut self, req: &Request, resp: &Response) -> Next;

    /// Runs after the upstream answered, with the context `handle_request` returned. `is_error`
    /// means the host produced no response: only clean up then.
    fn handle_response(&mut self, _req_ctx: u32, _req: &Request, _resp: &Response, _is_error: bool) {}
}

/// Optional host features for [`enable_features`].
pub mod features {
    /// Read the request body without taking it from the upstream.
    pub const BUFFER_REQUEST: u32 = 1;
    /// Change the status code and body in `handle_response`.
    pub const BUFFER_RESPONSE: u32 = 2;
    /// Access trailers.
    pub const TRAILERS: u32 = 4;
}

/// Asks the host for features; returns the set now enabled.
pub fn enable_features(features: u32) -> u32 {
    host::h_enable_features(features)
}

/// Host log levels.
#[derive(Clone, Copy, Debug)]
pub enum LogLevel {
    Debug = -1,
    Info = 0,
    Warn = 1,
    Error = 2,
}

/// Writes a message to the gateway's log.
pub fn log(level: LogLevel, msg: &str) {
    host::h_log(level as i32, msg)
}

/// Whether messages at `level` are logged.
pub fn log_enabled(level: LogLevel) -> bool {
    host::h_log_enabled(level as i32)
}

/// The filter's configuration: the HCL `config` object, as JSON (see [`json`]).
pub fn config() -> Vec<u8> {
    with_value(host::h_get_config, |v| v.to_vec())
}

thread_local! {
    // One scratch buffer per instance; getters read into it and grow it when a value is larger.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 2048]);
}

/// Runs a buf/buf_limit getter into the scratch buffer and passes the value to `f` without copying.
fn with_value<T>(get: impl Fn(&mut [u8]) -> u32, f: impl FnOnce(&[u8]) -> T) -> T {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let mut n = get(&mut s[..]) as usize;
        if n > s.len() {
            s.resize(n, 0);
            n = get(&mut s[..]) as usize;
        }
        f(&s[..n])
    })
}

/// Like `with_value` for the count_len getters: `f` gets the NUL-terminated list and its count.
fn with_list<T>(get: impl Fn(&mut [u8]) -> u64, f: impl FnOnce(&[u8], usize) -> T) -> T {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let mut cl = get(&mut s[..]);
        if cl as u32 as usize > s.len() {
            s.resize(cl as u32 as usize, 0);
            cl = get(&mut s[..]);
        }
        f(&s[..cl as u32 as usize], (cl >> 32) as usize)
    })
}

fn string(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn split_nul(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = if list.last() == Some(&0) { &list[..list.len() - 1] } else { list };
    body.split(|&c| c == 0).filter(move |_| !list.is_empty())
}

/// The current request.
pub struct Request;

impl Request {
    /// The method, e.g. `GET`.
    pub fn method(&self) -> String {
        with_value(host::h_get_method, string)
    }
    /// Replaces the method.
    pub fn set_method(&self, m: &str) {
        host::h_set_method(m)
    }
    /// The URI as received: path and query, percent-encoded.
    pub fn uri(&self) -> String {
        with_value(host::h_get_uri, string)
    }
    /// Passes the URI to `f` without copying it.
    pub fn with_uri<T>(&self, f: impl FnOnce(&[u8]) -> T) -> T {
        with_value(host::h_get_uri, f)
    }
    /// The path part of the URI (no query), percent-encoded.
    pub fn path(&self) -> String {
        self.with_uri(|u| string(u.split(|&c| c == b'?').next().unwrap_or(u)))
    }
    /// Replaces path and query; `uri` must be percent-encoded.
    pub fn set_uri(&self, uri: &str) {
        host::h_set_uri(uri)
    }
    /// E.g. `HTTP/1.1`.
    pub fn protocol_version(&self) -> String {
        with_value(host::h_get_protocol_version, string)
    }
    /// The client's address and port, e.g. `1.2.3.4:5678`.
    pub fn source_addr(&self) -> String {
        with_value(host::h_get_source_addr, string)
    }
    /// The request headers.
    pub fn headers(&self) -> Headers {
        Headers(0)
    }
    /// The request body.
    pub fn body(&self) -> Body {
        Body(0)
    }
}

/// The response: written by the filter, or produced upstream (in `handle_response`).
pub struct Response;

impl Response {
    /// The status code.
    pub fn status(&self) -> u32 {
        host::h_get_status_code()
    }
    /// Sets the status code (in `handle_response` this needs `BUFFER_RESPONSE`).
    pub fn set_status(&self, code: u32) {
        host::h_set_status_code(code)
    }
    /// The response headers.
    pub fn headers(&self) -> Headers {
        Headers(1)
    }
    /// The response body.
    pub fn body(&self) -> Body {
        Body(1)
    }
}

/// A header set; names are case-insensitive.
pub struct Headers(u32);

impl Headers {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<String> {
        self.with(name, |v| v.map(string))
    }
    /// Passes the first value of `name` to `f` without copying it.
    pub fn with<T>(&self, name: &str, f: impl FnOnce(Option<&[u8]>) -> T) -> T {
        let kind = self.0;
        with_list(|b| host::h_get_header_values(kind, name, b), |list, n| f(if n == 0 { None } else { split_nul(list).next() }))
    }
    /// Whether `name` is present (nothing is copied).
    pub fn has(&self, name: &str) -> bool {
        host::h_get_header_values(self.0, name, &mut []) >> 32 > 0
    }
    /// Every value of `name`.
    pub fn values(&self, name: &str) -> Vec<String> {
        let kind = self.0;
        with_list(|b| host::h_get_header_values(kind, name, b), |list, _| split_nul(list).map(string).collect())
    }
    /// Every header name, lower-cased.
    pub fn names(&self) -> Vec<String> {
        let kind = self.0;
        with_list(|b| host::h_get_header_names(kind, b), |list, _| split_nul(list).map(string).collect())
    }
    /// Replaces every value of `name`.
    pub fn set(&self, name: &str, value: &str) {
        host::h_set_header_value(self.0, name, value.as_bytes())
    }
    /// Appends a value.
    pub fn add(&self, name: &str, value: &str) {
        host::h_add_header_value(self.0, name, value.as_bytes())
    }
    /// Removes every value of `name`.
    pub fn remove(&self, name: &str) {
        host::h_remove_header(self.0, name)
    }
}

/// A request or response body. Reads continue where the last one stopped.
pub struct Body(u32);

impl Body {
    /// Reads the next bytes into `buf`; returns how many and whether the body is exhausted.
    pub fn read(&self, buf: &mut [u8]) -> (usize, bool) {
        if buf.is_empty() {
            return (0, false);
        }
        let el = host::h_read_body(self.0, buf);
        (el as u32 as usize, el >> 32 == 1)
    }
    /// Reads the rest of the body.
    pub fn read_all(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let (n, eof) = self.read(&mut chunk);
            out.extend_from_slice(&chunk[..n]);
            if eof {
                return out;
            }
        }
    }
    /// Appends to the body; the first write of a phase replaces the existing body.
    pub fn write(&self, data: &[u8]) {
        host::h_write_body(self.0, data)
    }
}

// The single filter instance of this Wasm instance, created on first use.
thread_local! {
    static FILTER: RefCell<Option<Box<dyn Filter>>> = RefCell::new(None);
}

#[doc(hidden)]
pub fn __initialize<F: Filter + 'static>(init: fn() -> F) {
    // A panic's message goes to the gateway's log at error level before the instance traps; a
    // panic while starting (a configuration the filter refuses) is quoted in the load error.
    std::panic::set_hook(Box::new(|info| host::h_log(LogLevel::Error as i32, &info.to_string())));
    FILTER.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(Box::new(init()));
        }
    })
}

#[doc(hidden)]
pub fn __handle_request<F: Filter + 'static>(init: fn() -> F) -> u64 {
    FILTER.with(|slot| {
        let mut slot = slot.borrow_mut();
        let f = slot.get_or_insert_with(|| Box::new(init()));
        match f.handle_request(&Request, &Response) {
            Next::Respond => 0,
            Next::Continue(ctx) => ((ctx as u64) << 32) | 1,
        }
    })
}

#[doc(hidden)]
pub fn __handle_response(req_ctx: u32, is_error: u32) {
    FILTER.with(|slot| {
        if let Some(f) = slot.borrow_mut().as_mut() {
            f.handle_response(req_ctx, &Request, &Response, is_error == 1)
        }
    })
}

/// Exports `handle_request` and `handle_response` for a filter built by `$init` (a function or
/// closure without captures returning the filter), called once per instance when it starts (the
/// exported `_initialize`; natively, on the first request). Read the configuration in `$init` and
/// panic on one you cannot use: the message is logged and the gateway refuses to load the filter,
/// quoting it (`sluice validate` shows it too).
#[macro_export]
macro_rules! export_filter {
    ($init:expr) => {
        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn _initialize() {
            $crate::__initialize($init)
        }

        #[no_mangle]
        pub extern "C" fn handle_request() -> u64 {
            $crate::__handle_request($init)
        }

        #[no_mangle]
        pub extern "C" fn handle_response(req_ctx: u32, is_error: u32) {
            $crate::__handle_response(req_ctx, is_error)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::testing::{self, Host};
    use super::*;

    #[test]
    fn getters_follow_the_buffer_protocol() {
        let mut h = Host::new();
        h.uri = "/a%20b?x=1".into();
        let long = "v".repeat(5000); // larger than the scratch buffer: exercises the retry
        h.req_headers = vec![
            ("X-One".into(), "1".into()),
            ("X-Many".into(), "a".into()),
            ("x-many".into(), "b".into()),
            ("X-Long".into(), long.clone()),
        ];
        testing::install(h);
        let req = Request;
        assert_eq!(req.path(), "/a%20b");
        assert_eq!(req.headers().get("x-one").as_deref(), Some("1"));
        assert_eq!(req.headers().get("X-LONG"), Some(long));
        assert_eq!(req.headers().values("x-many"), vec!["a", "b"]);
        assert_eq!(req.headers().names(), vec!["x-one", "x-many", "x-long"]);
        assert!(req.headers().get("absent").is_none());
        assert!(!req.headers().has("absent"));
        assert!(req.headers().with("x-one", |v| v == Some(&b"1"[..])));
    }

    #[test]
    fn body_reads_and_replaces() {
        let mut h = Host::new();
        h.req_body = "0123456789".repeat(1000).into_bytes();
        testing::install(h.clone());
        assert_eq!(Request.body().read_all(), h.req_body);
        Request.body().write(b"new");
        Request.body().write(b"-body");
        assert_eq!(testing::host().req_body, b"new-body");
    }

    struct Tagger;
    impl Filter for Tagger {
        fn handle_request(&mut self, req: &Request, resp: &Response) -> Next {
            if req.headers().has("x-deny") {
                resp.set_status(403);
                resp.body().write(b"no");
                return Next::Respond;
            }
            Next::Continue(42)
        }
        fn handle_response(&mut self, ctx: u32, _: &Request, resp: &Response, _: bool) {
            if ctx == 42 {
                resp.headers().set("x-tag", "seen");
            }
        }
    }

    #[test]
    fn run_drives_both_phases() {
        testing::install(Host::new());
        let out = testing::run(&mut Tagger, |h| h.status = 201);
        assert_eq!(out, testing::Outcome { next: true, req_ctx: 42 });
        let h = testing::host();
        assert_eq!(Host::get(&h.resp_headers, "X-Tag").as_deref(), Some("seen"));
        assert_eq!(h.status, 201);

        let mut h = Host::new();
        h.req_headers.push(("X-Deny".into(), "1".into()));
        testing::install(h);
        assert!(!testing::run(&mut Tagger, |_| {}).next);
        let h = testing::host();
        assert_eq!((h.status, h.resp_body), (403, b"no".to_vec()));
    }
}
