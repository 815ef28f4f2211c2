;; start_trap: the reactor start function asks for the request method, which has no request.
(module
  (import "http_handler" "get_method" (func $get_method (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_initialize") (drop (call $get_method (i32.const 0) (i32.const 16))))
  (func (export "handle_request") (result i64) (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
