;; bad_imports: imports the host does not have (one a typo), one with the wrong signature, one from an
;; unknown module, and no exported memory.
(module
  (import "http_handler" "get_headers" (func (param i32 i32) (result i32)))
  (import "http_handler" "get_methd" (func (param i32 i32) (result i32)))
  (import "http_handler" "get_uri" (func (param i32) (result i32)))
  (import "env" "abort" (func (param i32 i32 i32 i32)))
  (memory 1)
  (func (export "handle_request") (result i64) (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
