;; leak: a guest that keeps one client's data for the next, as a careless guest would. Each
;; request answers with the x-token value the previous request on the same instance sent (in
;; x-previous) and keeps its own: the bytes in memory, their length in a global. With
;; isolation = "request" the next request finds neither. A request with an x-grow header also
;; grows the memory by one page; one with x-fill writes 400 KiB (100 pages) of its memory.
(module
  (import "http_handler" "get_header_values"
    (func $get_header_values (param i32 i32 i32 i32 i32) (result i64)))
  (import "http_handler" "set_header_value"
    (func $set_header_value (param i32 i32 i32 i32 i32)))
  (memory (export "memory") 8)
  (global $len (mut i32) (i32.const 0))
  (data (i32.const 0) "x-token")     ;; 0..7
  (data (i32.const 16) "x-previous") ;; 16..26
  (data (i32.const 32) "x-grow")     ;; 32..38
  (data (i32.const 48) "x-fill")     ;; 48..54
  (func (export "handle_request") (result i64)
    (local $r i64)
    ;; Answer with what the previous request left.
    (call $set_header_value (i32.const 1) (i32.const 16) (i32.const 10) (i32.const 2048) (global.get $len))
    ;; Keep this request's token: values come NUL-terminated, count<<32 | total length.
    (local.set $r (call $get_header_values (i32.const 0) (i32.const 0) (i32.const 7) (i32.const 2048) (i32.const 256)))
    (global.set $len (i32.const 0))
    (if (i64.ne (i64.shr_u (local.get $r) (i64.const 32)) (i64.const 0))
      (then (global.set $len (i32.sub (i32.wrap_i64 (local.get $r)) (i32.const 1)))))
    (if (i64.ne (i64.shr_u
          (call $get_header_values (i32.const 0) (i32.const 32) (i32.const 6) (i32.const 4096) (i32.const 64))
          (i64.const 32)) (i64.const 0))
      (then (drop (memory.grow (i32.const 1)))))
    (if (i64.ne (i64.shr_u
          (call $get_header_values (i32.const 0) (i32.const 48) (i32.const 6) (i32.const 4096) (i32.const 64))
          (i64.const 32)) (i64.const 0))
      (then (memory.fill (i32.const 65536) (i32.const 0xaa) (i32.const 409600))))
    (i64.const 0))
  (func (export "handle_response") (param i32 i32)))
