;; faults: the first byte of the request header x-mode picks how handle_request misbehaves:
;;   u  unreachable          o  out-of-bounds load      l  infinite loop
;;   g  grow memory by 512 pages (32MiB) and trap if that fails
;;   h  pass an out-of-bounds name to a host function
;; anything else continues (next=1). The response gets x-calls: how many requests this
;; instance served, so tests can tell a fresh instance from a reused one.
(module
  (import "http_handler" "get_header_values"
    (func $get_header_values (param i32 i32 i32 i32 i32) (result i64)))
  (import "http_handler" "set_header_value"
    (func $set_header_value (param i32 i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 0) "x-mode")   ;; 0..6
  (data (i32.const 16) "x-calls") ;; 16..23
  (func (export "handle_request") (result i64)
    (local $mode i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (drop (call $get_header_values (i32.const 0) (i32.const 0) (i32.const 6) (i32.const 64) (i32.const 32)))
    (local.set $mode (i32.load8_u (i32.const 64)))
    (if (i32.eq (local.get $mode) (i32.const 117)) (then unreachable))               ;; 'u'
    (if (i32.eq (local.get $mode) (i32.const 111))                                   ;; 'o'
      (then (drop (i32.load (i32.const 0x7ffffff0)))))
    (if (i32.eq (local.get $mode) (i32.const 108)) (then (loop $forever (br $forever)))) ;; 'l'
    (if (i32.eq (local.get $mode) (i32.const 103))                                   ;; 'g'
      (then (if (i32.eq (memory.grow (i32.const 512)) (i32.const -1)) (then unreachable))))
    (if (i32.eq (local.get $mode) (i32.const 104))                                   ;; 'h'
      (then (call $set_header_value (i32.const 0) (i32.const 0xfffff000) (i32.const 100) (i32.const 0) (i32.const 0))))
    (i64.const 1))
  (func (export "handle_response") (param $ctx i32) (param $is_error i32)
    ;; write the call count as one decimal digit (mod 10) at 32
    (i32.store8 (i32.const 32) (i32.add (i32.const 48) (i32.rem_u (global.get $calls) (i32.const 10))))
    (call $set_header_value (i32.const 1) (i32.const 16) (i32.const 7) (i32.const 32) (i32.const 1))))
