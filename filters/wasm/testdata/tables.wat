;; tables: a guest that changes its table during a request (table.set), which per-request
;; isolation cannot undo: isolation = "request" refuses it.
(module
  (memory (export "memory") 1)
  (table $t 2 funcref)
  (elem declare func $one)
  (func $one (result i32) (i32.const 1))
  (func (export "handle_request") (result i64)
    (table.set $t (i32.const 0) (ref.func $one))
    (i64.extend_i32_u (call_indirect $t (result i32) (i32.const 0))))
  (func (export "handle_response") (param i32 i32)))
