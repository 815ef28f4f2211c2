;; pw_edge: a proxy-wasm guest for the host functions' edge cases and hostile inputs, and the
;; isolation tests. The first character of the request path after "/" picks what
;; proxy_on_request_headers does; a probe answers with a local response whose status is 400 +
;; the WasmResult the host returned (0 Ok, 1 NotFound, 2 BadArgument, 3 SerializationFailure,
;; 6 InvalidMemoryAccess, 8 CasMismatch, 12 Unimplemented).
(module
  (import "env" "proxy_get_header_map_value" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $get_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $local (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_dequeue_shared_queue" (func $dequeue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define_metric (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment_metric (param i32 i64) (result i32)))
  (import "env" "proxy_grpc_call" (func $grpc_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $effective (param i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_log_level" (func $log_level (param i32) (result i32)))
  (import "env" "proxy_set_header_map_pairs" (func $set_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_enqueue_shared_queue" (func $enqueue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_status" (func $buffer_status (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $set_tick (param i32) (result i32)))
  (memory (export "memory") 1)
  ;; 0: value pointer, 4: value size (out-pointers); 16: ":path"; 32: "key"; 48: "v";
  ;; 64: malformed pairs (count 0x10000000); 80: "nope"; 96: "x-pw-trailer"; 200: result of the start-time probe;
  ;; 204: result of the tick-time probe.
  (data (i32.const 16) ":path")
  (data (i32.const 32) "key")
  (data (i32.const 48) "v")
  (data (i32.const 64) "\00\00\00\10")
  (data (i32.const 80) "nope")
  (data (i32.const 96) "x-pw-trailer")
  (global $heap (mut i32) (i32.const 4096))
  ;; Set by mode A: the allocator answers a pointer past the end of memory.
  (global $hostile_alloc (mut i32) (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
  ;; A bump allocator that starts over when the page is full.
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (if (global.get $hostile_alloc) (then (return (i32.const 0xFFFFFF00))))
    (if (i32.gt_u (i32.add (global.get $heap) (local.get $n)) (i32.const 65536))
      (then (global.set $heap (i32.const 4096))))
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    ;; Wrong phase: no request headers while starting.
    (i32.store (i32.const 200) (call $get_header (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 0) (i32.const 4)))
    (i32.const 1))
  ;; A configuration of 6 bytes ("refuse") is refused; one of 4 bytes ("tick") starts a 10ms tick.
  (func (export "proxy_on_configure") (param i32) (param $size i32) (result i32)
    (if (i32.eq (local.get $size) (i32.const 6)) (then (return (i32.const 0))))
    (if (i32.eq (local.get $size) (i32.const 4)) (then (drop (call $set_tick (i32.const 10)))))
    (i32.const 1))
  ;; Wrong phase: no request headers in a tick.
  (func (export "proxy_on_tick") (param i32)
    (i32.store (i32.const 204) (call $get_header (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 0) (i32.const 4))))
  ;; Response trailers: add one.
  (func (export "proxy_on_response_trailers") (param i32 i32) (result i32)
    (drop (call $add_header (i32.const 3) (i32.const 96) (i32.const 12) (i32.const 48) (i32.const 1)))
    (i32.const 0))
  (func $answer (param $r i32) (result i32)
    (drop (call $local (i32.add (i32.const 400) (local.get $r)) (i32.const 0) (i32.const 0)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1)))
    (i32.const 1))
  (func $recurse (param $n i32) (result i32)
    (i32.add (call $recurse (i32.add (local.get $n) (i32.const 1))) (i32.const 1)))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (local $mode i32)
    (if (call $get_header (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 0) (i32.const 4))
      (then unreachable))
    (local.set $mode (i32.load8_u (i32.add (i32.load (i32.const 0)) (i32.const 1))))
    ;; a: a key pointer past the end of memory
    (if (i32.eq (local.get $mode) (i32.const 0x61)) (then
      (return (call $answer (call $get_header (i32.const 0) (i32.const 0xFFFFFFF0) (i32.const 16) (i32.const 0) (i32.const 4))))))
    ;; b: a huge value size
    (if (i32.eq (local.get $mode) (i32.const 0x62)) (then
      (return (call $answer (call $add_header (i32.const 0) (i32.const 32) (i32.const 3) (i32.const 48) (i32.const 0x7FFFFFFF))))))
    ;; c: a property path out of bounds
    (if (i32.eq (local.get $mode) (i32.const 0x63)) (then
      (return (call $answer (call $get_property (i32.const 65530) (i32.const 100) (i32.const 0) (i32.const 4))))))
    ;; d: response headers in the request phase
    (if (i32.eq (local.get $mode) (i32.const 0x64)) (then
      (return (call $answer (call $get_header (i32.const 2) (i32.const 16) (i32.const 5) (i32.const 0) (i32.const 4))))))
    ;; e: the response body in the request phase
    (if (i32.eq (local.get $mode) (i32.const 0x65)) (then
      (return (call $answer (call $set_buffer (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 48) (i32.const 1))))))
    ;; f: an unknown stream type
    (if (i32.eq (local.get $mode) (i32.const 0x66)) (then
      (return (call $answer (call $continue (i32.const 7))))))
    ;; g: an out-pointer past the end of memory (plugin configuration "xyz")
    (if (i32.eq (local.get $mode) (i32.const 0x67)) (then
      (return (call $answer (call $get_buffer (i32.const 7) (i32.const 0) (i32.const 10) (i32.const 0xFFFFFFFC) (i32.const 4))))))
    ;; h: malformed header pairs (a count larger than the bytes)
    (if (i32.eq (local.get $mode) (i32.const 0x68)) (then
      (return (call $answer (call $local (i32.const 200) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
        (i32.const 64) (i32.const 8) (i32.const -1))))))
    ;; i: an upstream the filter does not name
    (if (i32.eq (local.get $mode) (i32.const 0x69)) (then
      (return (call $answer (call $http_call (i32.const 80) (i32.const 4) (i32.const 0) (i32.const 0)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 100) (i32.const 8))))))
    ;; j: compare-and-swap with a stale version
    (if (i32.eq (local.get $mode) (i32.const 0x6a)) (then
      (drop (call $set_shared (i32.const 32) (i32.const 3) (i32.const 48) (i32.const 1) (i32.const 0)))
      (return (call $answer (call $set_shared (i32.const 32) (i32.const 3) (i32.const 48) (i32.const 1) (i32.const 0x7FFFFFF0))))))
    ;; k: a queue that does not exist
    (if (i32.eq (local.get $mode) (i32.const 0x6b)) (then
      (return (call $answer (call $dequeue (i32.const 77) (i32.const 0) (i32.const 4))))))
    ;; l: an unknown metric type
    (if (i32.eq (local.get $mode) (i32.const 0x6c)) (then
      (return (call $answer (call $define_metric (i32.const 9) (i32.const 32) (i32.const 3) (i32.const 8))))))
    ;; m: a metric that was never defined
    (if (i32.eq (local.get $mode) (i32.const 0x6d)) (then
      (return (call $answer (call $increment_metric (i32.const 999) (i64.const 1))))))
    ;; n: gRPC, a stub
    (if (i32.eq (local.get $mode) (i32.const 0x6e)) (then
      (return (call $answer (call $grpc_call (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 100) (i32.const 8))))))
    ;; o: header pairs returned through an out-pointer past the end of memory
    (if (i32.eq (local.get $mode) (i32.const 0x6f)) (then
      (return (call $answer (call $get_pairs (i32.const 0) (i32.const 65534) (i32.const 4))))))
    ;; p: a local response with a status that is none
    (if (i32.eq (local.get $mode) (i32.const 0x70)) (then
      (drop (call $local (i32.const 99) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1)))
      (return (call $answer (i32.const 0)))))
    ;; q: an effective context that does not exist
    (if (i32.eq (local.get $mode) (i32.const 0x71)) (then
      (return (call $answer (call $effective (i32.const 42))))))
    ;; r: a log message out of bounds
    (if (i32.eq (local.get $mode) (i32.const 0x72)) (then
      (return (call $answer (call $log (i32.const 2) (i32.const 65000) (i32.const 1000))))))
    ;; s: what the wrong-phase call at start got
    (if (i32.eq (local.get $mode) (i32.const 0x73)) (then
      (return (call $answer (i32.load (i32.const 200))))))
    ;; v: get_log_level through an out-pointer past the end of memory
    (if (i32.eq (local.get $mode) (i32.const 0x76)) (then
      (return (call $answer (call $log_level (i32.const 65535))))))
    ;; t: what the wrong-phase call in a tick got (0 before the first tick)
    (if (i32.eq (local.get $mode) (i32.const 0x74)) (then
      (return (call $answer (i32.load (i32.const 204))))))
    ;; w: malformed header pairs to set
    (if (i32.eq (local.get $mode) (i32.const 0x77)) (then
      (return (call $answer (call $set_pairs (i32.const 0) (i32.const 64) (i32.const 8))))))
    ;; x: enqueue to a queue that does not exist
    (if (i32.eq (local.get $mode) (i32.const 0x78)) (then
      (return (call $answer (call $enqueue (i32.const 99) (i32.const 48) (i32.const 1))))))
    ;; y: buffer status through an out-pointer past the end of memory
    (if (i32.eq (local.get $mode) (i32.const 0x79)) (then
      (return (call $answer (call $buffer_status (i32.const 7) (i32.const 0xFFFFFFF0) (i32.const 4))))))
    ;; G: a body of 4 GiB - 1 bytes
    (if (i32.eq (local.get $mode) (i32.const 0x47)) (then
      (return (call $answer (call $set_buffer (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0xFFFFFFFF))))))
    ;; A: the guest's allocator answers a pointer past the end of memory
    (if (i32.eq (local.get $mode) (i32.const 0x41)) (then
      (global.set $hostile_alloc (i32.const 1))
      (local.set $n (call $get_header (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 0) (i32.const 4)))
      (global.set $hostile_alloc (i32.const 0))
      (return (call $answer (local.get $n)))))
    ;; P: pause with nothing that could resume the request
    (if (i32.eq (local.get $mode) (i32.const 0x50)) (then (return (i32.const 1))))
    ;; T: trap
    (if (i32.eq (local.get $mode) (i32.const 0x54)) (then unreachable))
    ;; L: loop forever
    (if (i32.eq (local.get $mode) (i32.const 0x4c)) (then (loop $forever (br $forever))))
    ;; M: grow memory until refused, then trap
    (if (i32.eq (local.get $mode) (i32.const 0x4d)) (then
      (loop $grow
        (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
      unreachable))
    ;; R: recurse without end
    (if (i32.eq (local.get $mode) (i32.const 0x52)) (then
      (return (call $recurse (i32.const 0)))))
    ;; anything else: pass
    (i32.const 0)))
