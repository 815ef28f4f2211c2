;; start_says: the reactor start function writes a line to stderr, logs one at error level and one
;; at info level through the ABI, writes 3000 bytes of filler to stderr and then traps, as an SDK
;; guest refusing its configuration does.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "http_handler" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  ;; iovec at 0: {ptr=64, len=27}; iovec at 8: {ptr=4096, len=3000}; nwritten at 16
  (data (i32.const 0) "\40\00\00\00\1b\00\00\00\00\10\00\00\b8\0b\00\00")
  (data (i32.const 64) "panic: config: bad \"keys\"\n\n")
  (data (i32.const 128) "config: unknown key \"heder\"")
  (data (i32.const 192) "info: not kept")
  (func (export "_initialize")
    (memory.fill (i32.const 4096) (i32.const 0x2e) (i32.const 3000))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 16)))
    (call $log (i32.const 2) (i32.const 128) (i32.const 27))
    (call $log (i32.const 0) (i32.const 192) (i32.const 14))
    (drop (call $fd_write (i32.const 2) (i32.const 8) (i32.const 1) (i32.const 16)))
    (call $log (i32.const 1) (i32.const 128) (i32.const 27))
    unreachable)
  (func (export "handle_request") (result i64) (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
