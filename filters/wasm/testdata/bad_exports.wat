;; bad_exports: handle_request has the wrong result type and handle_response is missing.
(module
  (memory (export "memory") 1)
  (func (export "handle_request") (result i32) (i32.const 1)))
