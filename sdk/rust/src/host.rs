//! The raw `http_handler` imports, wrapped as safe functions over slices. On wasm32 they call the
//! host; elsewhere `crate::testing` provides an in-process fake with the same behaviour.

#[cfg(target_arch = "wasm32")]
mod imp {
    #[link(wasm_import_module = "http_handler")]
    extern "C" {
        fn enable_features(features: u32) -> u32;
        fn get_config(buf: *mut u8, limit: u32) -> u32;
        fn log(level: i32, msg: *const u8, len: u32);
        fn log_enabled(level: i32) -> u32;
        fn get_method(buf: *mut u8, limit: u32) -> u32;
        fn set_method(p: *const u8, len: u32);
        fn get_uri(buf: *mut u8, limit: u32) -> u32;
        fn set_uri(p: *const u8, len: u32);
        fn get_protocol_version(buf: *mut u8, limit: u32) -> u32;
        fn get_source_addr(buf: *mut u8, limit: u32) -> u32;
        fn get_header_names(kind: u32, buf: *mut u8, limit: u32) -> u64;
        fn get_header_values(kind: u32, name: *const u8, name_len: u32, buf: *mut u8, limit: u32) -> u64;
        fn set_header_value(kind: u32, name: *const u8, name_len: u32, value: *const u8, value_len: u32);
        fn add_header_value(kind: u32, name: *const u8, name_len: u32, value: *const u8, value_len: u32);
        fn remove_header(kind: u32, name: *const u8, name_len: u32);
        fn read_body(kind: u32, buf: *mut u8, limit: u32) -> u64;
        fn write_body(kind: u32, p: *const u8, len: u32);
        fn get_status_code() -> u32;
        fn set_status_code(code: u32);
    }

    // Safety for every wrapper: the host reads or writes only inside the region we pass, and the
    // slice outlives the call.
    pub fn h_enable_features(f: u32) -> u32 { unsafe { enable_features(f) } }
    pub fn h_get_config(b: &mut [u8]) -> u32 { unsafe { get_config(b.as_mut_ptr(), b.len() as u32) } }
    pub fn h_log(level: i32, m: &str) { unsafe { log(level, m.as_ptr(), m.len() as u32) } }
    pub fn h_log_enabled(level: i32) -> bool { unsafe { log_enabled(level) == 1 } }
    pub fn h_get_method(b: &mut [u8]) -> u32 { unsafe { get_method(b.as_mut_ptr(), b.len() as u32) } }
    pub fn h_set_method(s: &str) { unsafe { set_method(s.as_ptr(), s.len() as u32) } }
    pub fn h_get_uri(b: &mut [u8]) -> u32 { unsafe { get_uri(b.as_mut_ptr(), b.len() as u32) } }
    pub fn h_set_uri(s: &str) { unsafe { set_uri(s.as_ptr(), s.len() as u32) } }
    pub fn h_get_protocol_version(b: &mut [u8]) -> u32 {
        unsafe { get_protocol_version(b.as_mut_ptr(), b.len() as u32) }
    }
    pub fn h_get_source_addr(b: &mut [u8]) -> u32 { unsafe { get_source_addr(b.as_mut_ptr(), b.len() as u32) } }
    pub fn h_get_header_names(kind: u32, b: &mut [u8]) -> u64 {
        unsafe { get_header_names(kind, b.as_mut_ptr(), b.len() as u32) }
    }
    pub fn h_get_header_values(kind: u32, name: &str, b: &mut [u8]) -> u64 {
        unsafe { get_header_values(kind, name.as_ptr(), name.len() as u32, b.as_mut_ptr(), b.len() as u32) }
    }
    pub fn h_set_header_value(kind: u32, name: &str, value: &[u8]) {
        unsafe { set_header_value(kind, name.as_ptr(), name.len() as u32, value.as_ptr(), value.len() as u32) }
    }
    pub fn h_add_header_value(kind: u32, name: &str, value: &[u8]) {
        unsafe { add_header_value(kind, name.as_ptr(), name.len() as u32, value.as_ptr(), value.len() as u32) }
    }
    pub fn h_remove_header(kind: u32, name: &str) { unsafe { remove_header(kind, name.as_ptr(), name.len() as u32) } }
    pub fn h_read_body(kind: u32, b: &mut [u8]) -> u64 { unsafe { read_body(kind, b.as_mut_ptr(), b.len() as u32) } }
    pub fn h_write_body(kind: u32, b: &[u8]) { unsafe { write_body(kind, b.as_ptr(), b.len() as u32) } }
    pub fn h_get_status_code() -> u32 { unsafe { get_status_code() } }
    pub fn h_set_status_code(c: u32) { unsafe { set_status_code(c) } }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    pub use crate::testing::fake::*;
}

pub use imp::*;
