;; start_section_loop: the start section's function makes 2^60 calls without a loop (each call
;; below depth 60 makes two more), which wazero would run inside instantiation; with a timeout it
;; must be stopped.
(module
  (memory (export "memory") 1)
  (func $spin (param $n i32)
    (if (i32.eqz (local.get $n)) (then return))
    (call $spin (i32.sub (local.get $n) (i32.const 1)))
    (call $spin (i32.sub (local.get $n) (i32.const 1))))
  (func $start (call $spin (i32.const 60)))
  (start $start)
  (func (export "handle_request") (result i64) (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
