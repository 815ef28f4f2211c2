;; big_memory: asks for 320 pages (20MiB) at start, more than the default 16MiB memory_limit.
(module
  (memory (export "memory") 320)
  (func (export "handle_request") (result i64) (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
