;; command: a WASI-command-style guest whose _start enables buffer_response for every request
;; and records that it ran; handle_request answers 200 with x-started and the features.
(module
  (import "http_handler" "enable_features" (func $enable_features (param i32) (result i32)))
  (import "http_handler" "set_header_value"
    (func $set_header_value (param i32 i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (global $features (mut i32) (i32.const -1))
  (data (i32.const 0) "x-features") ;; 0..10
  (func (export "_start")
    (global.set $features (call $enable_features (i32.const 2))))
  (func (export "handle_request") (result i64)
    (i32.store8 (i32.const 32) (i32.add (i32.const 48) (global.get $features)))
    (call $set_header_value (i32.const 1) (i32.const 0) (i32.const 10) (i32.const 32) (i32.const 1))
    (i64.const 0))
  (func (export "handle_response") (param i32 i32)))
