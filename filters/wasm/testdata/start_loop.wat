;; start_loop: the reactor start function never returns; with a timeout, building the filter
;; must fail after the start function's time bound instead of hanging.
(module
  (memory (export "memory") 1)
  (func (export "_initialize") (loop $forever (br $forever)))
  (func (export "handle_request") (result i64) (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
