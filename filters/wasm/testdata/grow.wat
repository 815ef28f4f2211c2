;; Grows its memory to 4 pages on its first request, then names a request header from memory
;; past the first page (the host must see the grown memory), and reads a header into it.
(module
  (import "http_handler" "get_header_values"
    (func $get_header_values (param i32 i32 i32 i32 i32) (result i64)))
  (import "http_handler" "set_header_value"
    (func $set_header_value (param i32 i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "x-grown") ;; 0..7
  (data (i32.const 16) "yes")    ;; 16..19
  (data (i32.const 32) "x-id")   ;; 32..36
  (func (export "handle_request") (result i64)
    (if (i32.lt_u (memory.size) (i32.const 4))
      (then (drop (memory.grow (i32.sub (i32.const 4) (memory.size))))))
    ;; name and value at 200,000 (page 3), copied from the data segments
    (memory.copy (i32.const 200000) (i32.const 0) (i32.const 7))
    (memory.copy (i32.const 200016) (i32.const 16) (i32.const 3))
    (memory.copy (i32.const 200032) (i32.const 32) (i32.const 4))
    ;; x-id's value read to 250,000, then set as x-copied
    (drop (call $get_header_values (i32.const 0) (i32.const 200032) (i32.const 4) (i32.const 250000) (i32.const 64)))
    (call $set_header_value (i32.const 0) (i32.const 200000) (i32.const 7) (i32.const 200016) (i32.const 3))
    (memory.copy (i32.const 200048) (i32.const 200032) (i32.const 4))
    (i32.store8 (i32.const 200050) (i32.const 0x63)) ;; "x-cd"
    (call $set_header_value (i32.const 0) (i32.const 200048) (i32.const 4) (i32.const 250000) (i32.const 3))
    (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
