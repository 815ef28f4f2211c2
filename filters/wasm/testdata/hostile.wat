;; hostile: the first byte of the request header x-mode picks how handle_request misbehaves,
;; for the tests of the limits every guest runs under:
;;   l  loop forever                  r  recurse without end (no loop: only calls)
;;   b  write a 1 GiB response body, 1 MiB at a time (the same 1 MiB of memory)
;;   q  write a 1 GiB request body, likewise
;;   e  print 100 lines to stderr     u  unreachable
;;   d  recurse 500 calls deep and continue (a legitimate deep call chain)
;;   m  answer with a 3 MiB body written 1 MiB at a time, each MiB starting "A" and ending "Z"
;; anything else continues (next=1).
(module
  (import "http_handler" "get_header_values"
    (func $get_header_values (param i32 i32 i32 i32 i32) (result i64)))
  (import "http_handler" "write_body" (func $write_body (param i32 i32 i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 17)
  (data (i32.const 0) "x-mode")
  ;; an iovec at 32: the line at 48, 23 bytes
  (data (i32.const 32) "\30\00\00\00\17\00\00\00")
  (data (i32.const 48) "hostile guest says hi!\0a")
  (func $rec (param i32) (result i32)
    (i32.add (i32.const 1) (call $rec (local.get 0))))
  (func $down (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $down (i32.sub (local.get $n) (i32.const 1)))))))
  (func $write (param $kind i32) (param $n i32)
    (local $i i32)
    (i32.store8 (i32.const 65536) (i32.const 65))     ;; A
    (i32.store8 (i32.const 1114111) (i32.const 90))   ;; Z
    (loop $l
      (call $write_body (local.get $kind) (i32.const 65536) (i32.const 1048576))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
  (func (export "handle_request") (result i64)
    (local $mode i32) (local $i i32)
    (drop (call $get_header_values (i32.const 0) (i32.const 0) (i32.const 6) (i32.const 16) (i32.const 8)))
    (local.set $mode (i32.load8_u (i32.const 16)))
    (if (i32.eq (local.get $mode) (i32.const 108)) (then (loop $forever (br $forever))))       ;; l
    (if (i32.eq (local.get $mode) (i32.const 114)) (then (drop (call $rec (i32.const 0)))))   ;; r
    (if (i32.eq (local.get $mode) (i32.const 98)) (then (call $write (i32.const 1) (i32.const 1024))))    ;; b
    (if (i32.eq (local.get $mode) (i32.const 113)) (then (call $write (i32.const 0) (i32.const 1024))))   ;; q
    (if (i32.eq (local.get $mode) (i32.const 117)) (then unreachable))                        ;; u
    (if (i32.eq (local.get $mode) (i32.const 100))                                            ;; d
      (then (drop (call $down (i32.const 500)))))
    (if (i32.eq (local.get $mode) (i32.const 101))                                            ;; e
      (then (loop $lines
        (drop (call $fd_write (i32.const 2) (i32.const 32) (i32.const 1) (i32.const 40)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $lines (i32.lt_u (local.get $i) (i32.const 100))))))
    (if (i32.eq (local.get $mode) (i32.const 109))                                            ;; m
      (then
        (call $write (i32.const 1) (i32.const 3))
        (i32.store8 (i32.const 16) (i32.const 0))
        (return (i64.const 0))))
    ;; clear x-mode's value for the next request on this instance
    (i32.store8 (i32.const 16) (i32.const 0))
    (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
