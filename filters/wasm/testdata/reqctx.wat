;; reqctx: a guest that keeps nothing between its two phases but what reqCtx carries, as
;; release_between_phases requires. handle_request returns the first byte of the request's x-n
;; header as reqCtx and sets x-before on the response before next=1 (the host replays it onto the
;; upstream's response); handle_response echoes reqCtx in x-echo.
(module
  (import "http_handler" "get_header_values"
    (func $get_header_values (param i32 i32 i32 i32 i32) (result i64)))
  (import "http_handler" "set_header_value"
    (func $set_header_value (param i32 i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "x-n")        ;; 0..3
  (data (i32.const 16) "x-before")  ;; 16..24
  (data (i32.const 32) "yes")       ;; 32..35
  (data (i32.const 48) "x-echo")    ;; 48..54
  (func (export "handle_request") (result i64)
    (i32.store8 (i32.const 1024) (i32.const 0))
    (drop (call $get_header_values (i32.const 0) (i32.const 0) (i32.const 3) (i32.const 1024) (i32.const 64)))
    (call $set_header_value (i32.const 1) (i32.const 16) (i32.const 8) (i32.const 32) (i32.const 3))
    (i64.or
      (i64.shl (i64.extend_i32_u (i32.load8_u (i32.const 1024))) (i64.const 32))
      (i64.const 1)))
  (func (export "handle_response") (param $ctx i32) (param $is_error i32)
    (i32.store8 (i32.const 2048) (local.get $ctx))
    (call $set_header_value (i32.const 1) (i32.const 48) (i32.const 6) (i32.const 2048) (i32.const 1))))
