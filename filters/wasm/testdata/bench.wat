;; bench: a typical small filter making five host calls per request: it reads the method, the
;; URI and one request header, tags the request, and tags the response on the way back.
(module
  (import "http_handler" "get_method" (func $get_method (param i32 i32) (result i32)))
  (import "http_handler" "get_uri" (func $get_uri (param i32 i32) (result i32)))
  (import "http_handler" "get_header_values"
    (func $get_header_values (param i32 i32 i32 i32 i32) (result i64)))
  (import "http_handler" "set_header_value"
    (func $set_header_value (param i32 i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "x-id")        ;; 0..4
  (data (i32.const 16) "x-wasm")     ;; 16..22
  (data (i32.const 32) "1")          ;; 32..33
  (data (i32.const 48) "x-filtered") ;; 48..58
  (data (i32.const 64) "yes")        ;; 64..67
  (func (export "handle_request") (result i64)
    (drop (call $get_method (i32.const 1024) (i32.const 64)))
    (drop (call $get_uri (i32.const 1024) (i32.const 2048)))
    (drop (call $get_header_values (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 1024) (i32.const 2048)))
    (call $set_header_value (i32.const 0) (i32.const 16) (i32.const 6) (i32.const 32) (i32.const 1))
    (i64.const 1))
  (func (export "handle_response") (param $ctx i32) (param $is_error i32)
    (call $set_header_value (i32.const 1) (i32.const 48) (i32.const 10) (i32.const 64) (i32.const 3))))
