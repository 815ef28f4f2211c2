// The raw http-wasm "http_handler" imports (see sdk/ABI.md). Pointers are offsets in this module's
// memory; lengths are bytes.

@external("http_handler", "enable_features")
export declare function enable_features(features: u32): u32;
@external("http_handler", "get_config")
export declare function get_config(buf: usize, limit: u32): u32;
@external("http_handler", "log")
export declare function log(level: i32, msg: usize, len: u32): void;
@external("http_handler", "log_enabled")
export declare function log_enabled(level: i32): u32;
@external("http_handler", "get_method")
export declare function get_method(buf: usize, limit: u32): u32;
@external("http_handler", "set_method")
export declare function set_method(p: usize, len: u32): void;
@external("http_handler", "get_uri")
export declare function get_uri(buf: usize, limit: u32): u32;
@external("http_handler", "set_uri")
export declare function set_uri(p: usize, len: u32): void;
@external("http_handler", "get_protocol_version")
export declare function get_protocol_version(buf: usize, limit: u32): u32;
@external("http_handler", "get_source_addr")
export declare function get_source_addr(buf: usize, limit: u32): u32;
@external("http_handler", "get_header_names")
export declare function get_header_names(kind: u32, buf: usize, limit: u32): u64;
@external("http_handler", "get_header_values")
export declare function get_header_values(kind: u32, name: usize, nameLen: u32, buf: usize, limit: u32): u64;
@external("http_handler", "set_header_value")
export declare function set_header_value(kind: u32, name: usize, nameLen: u32, value: usize, valueLen: u32): void;
@external("http_handler", "add_header_value")
export declare function add_header_value(kind: u32, name: usize, nameLen: u32, value: usize, valueLen: u32): void;
@external("http_handler", "remove_header")
export declare function remove_header(kind: u32, name: usize, nameLen: u32): void;
@external("http_handler", "read_body")
export declare function read_body(kind: u32, buf: usize, limit: u32): u64;
@external("http_handler", "write_body")
export declare function write_body(kind: u32, p: usize, len: u32): void;
@external("http_handler", "get_status_code")
export declare function get_status_code(): u32;
@external("http_handler", "set_status_code")
export declare function set_status_code(code: u32): void;
