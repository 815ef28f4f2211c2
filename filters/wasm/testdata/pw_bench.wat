;; pw_bench: the proxy-wasm twin of bench.wat, doing the same work per request: it reads the
;; method, the path and one request header, sets a request header, and sets a response header on
;; the way back (five host calls, replace being http-wasm's set_header_value; plus the host's
;; calls into the guest's allocator for the three values it reads).
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "x-id")        ;; 0..4
  (data (i32.const 16) "x-wasm")     ;; 16..22
  (data (i32.const 32) "1")          ;; 32..33
  (data (i32.const 48) "x-filtered") ;; 48..58
  (data (i32.const 64) "yes")        ;; 64..67
  (data (i32.const 80) ":method")    ;; 80..87
  (data (i32.const 96) ":path")      ;; 96..101
  (global $heap (mut i32) (i32.const 4096))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (if (i32.gt_u (i32.add (global.get $heap) (local.get $n)) (i32.const 65536))
      (then (global.set $heap (i32.const 4096))))
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (global.set $heap (i32.const 4096))
    (drop (call $get (i32.const 0) (i32.const 80) (i32.const 7) (i32.const 1024) (i32.const 1028)))
    (drop (call $get (i32.const 0) (i32.const 96) (i32.const 5) (i32.const 1024) (i32.const 1028)))
    (drop (call $get (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 1024) (i32.const 1028)))
    (drop (call $add (i32.const 0) (i32.const 16) (i32.const 6) (i32.const 32) (i32.const 1)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 48) (i32.const 10) (i32.const 64) (i32.const 3)))
    (i32.const 0)))
