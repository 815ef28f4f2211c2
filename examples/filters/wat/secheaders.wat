;; secheaders.wat: a response header injector written directly in WebAssembly text.
;; On every response it sets x-content-type-options: nosniff and x-frame-options: DENY unless the
;; upstream already set them, and removes x-powered-by. It needs no configuration and no allocator:
;; every string is a constant in the data section.
;;
;; Build: wat2wasm secheaders.wat -o secheaders.wasm
(module
  (import "http_handler" "get_header_values" (func $get_header_values
    (param $kind i32) (param $name i32) (param $name_len i32) (param $buf i32) (param $buf_limit i32)
    (result i64)))
  (import "http_handler" "set_header_value" (func $set_header_value
    (param $kind i32) (param $name i32) (param $name_len i32) (param $value i32) (param $value_len i32)))
  (import "http_handler" "remove_header" (func $remove_header
    (param $kind i32) (param $name i32) (param $name_len i32)))

  (memory (export "memory") 1)

  ;; name/value constants: offset, length
  (data (i32.const 0)   "x-content-type-options") ;; 22
  (data (i32.const 32)  "nosniff")                ;; 7
  (data (i32.const 48)  "x-frame-options")        ;; 15
  (data (i32.const 64)  "DENY")                   ;; 4
  (data (i32.const 80)  "x-powered-by")           ;; 12

  (global $kind_response i32 (i32.const 1))

  ;; set_default sets name to value unless the response already has the header. buf_limit 0 asks
  ;; only for the count: nothing is copied.
  (func $set_default (param $name i32) (param $name_len i32) (param $value i32) (param $value_len i32)
    (if (i64.eqz (i64.shr_u
          (call $get_header_values (global.get $kind_response) (local.get $name) (local.get $name_len)
            (i32.const 0) (i32.const 0))
          (i64.const 32)))
      (then (call $set_header_value (global.get $kind_response)
        (local.get $name) (local.get $name_len) (local.get $value) (local.get $value_len)))))

  ;; Continue with no request context: handle_response will still be called.
  (func (export "handle_request") (result i64)
    (i64.const 1))

  (func (export "handle_response") (param $req_ctx i32) (param $is_error i32)
    (if (local.get $is_error) (then (return)))
    (call $set_default (i32.const 0) (i32.const 22) (i32.const 32) (i32.const 7))
    (call $set_default (i32.const 48) (i32.const 15) (i32.const 64) (i32.const 4))
    (call $remove_header (global.get $kind_response) (i32.const 80) (i32.const 12)))
)
