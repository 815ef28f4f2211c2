;; loop: handle_request counts to 10000 in a tight loop, to measure what the interrupt check (a
;; filter with a timeout) costs per loop iteration.
(module
  (memory (export "memory") 1)
  (func (export "handle_request") (result i64)
    (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10000))))
    (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
