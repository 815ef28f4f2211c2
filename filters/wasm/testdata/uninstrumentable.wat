;; uninstrumentable: a guest the interrupt rewrite refuses (it already exports a global under
;; the rewrite's reserved name) but wazero runs; handle_request loops forever when the request has
;; an x-mode header, and continues otherwise.
(module
  (import "http_handler" "get_header_values"
    (func $get_header_values (param i32 i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (global (export "sluice.interrupt") i32 (i32.const 0))
  (data (i32.const 0) "x-mode")
  (func (export "handle_request") (result i64)
    (if (i64.ne (call $get_header_values (i32.const 0) (i32.const 0) (i32.const 6) (i32.const 16) (i32.const 8)) (i64.const 0))
      (then (loop $forever (br $forever))))
    (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
