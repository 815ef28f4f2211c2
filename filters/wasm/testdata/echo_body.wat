;; echo_body: answers every request itself with the request's body, read with read_body 16 KiB at
;; a time and written back with write_body: a guest that needs the whole request body (for a
;; streamed one, the host reads it in first: engine.Ctx.BufferBody).
(module
  (import "http_handler" "read_body"
    (func $read_body (param i32 i32 i32) (result i64)))
  (import "http_handler" "write_body"
    (func $write_body (param i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "handle_request") (result i64)
    (local $r i64)
    (loop $more
      (local.set $r (call $read_body (i32.const 0) (i32.const 0) (i32.const 16384)))
      (call $write_body (i32.const 1) (i32.const 0) (i32.wrap_i64 (i64.and (local.get $r) (i64.const 0xffffffff))))
      (br_if $more (i64.eqz (i64.shr_u (local.get $r) (i64.const 32)))))
    (i64.const 0))
  (func (export "handle_response") (param i32 i32)))
