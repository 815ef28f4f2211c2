// Direct calls to proxy-wasm host functions the SDK wraps wrongly or not at all (0.1.8 passes a
// size where a pointer belongs in set_shared_data and register_shared_queue, and has no
// set_buffer_bytes). Only the ABI is used: these run on any proxy-wasm host.
import * as imports from "@solo-io/proxy-runtime/imports";
import { free } from "@solo-io/proxy-runtime/malloc";

@external("env", "proxy_set_buffer_bytes")
declare function proxy_set_buffer_bytes(typ: i32, start: u32, length: u32, data: usize, size: usize): u32;

// out holds the pointer, size and cas the host writes back.
const out = new ArrayBuffer(12);

function taken(): ArrayBuffer {
  const ptr = load<usize>(changetype<usize>(out));
  const size = load<u32>(changetype<usize>(out) + 4);
  if (size == 0) return new ArrayBuffer(0);
  const copy = new ArrayBuffer(size);
  memory.copy(changetype<usize>(copy), ptr, size);
  free(ptr);
  return copy;
}

export class Shared {
  value: string = "";
  cas: u32 = 0;
  found: bool = false;
}

export function getShared(key: string): Shared {
  const k = String.UTF8.encode(key);
  const base = changetype<usize>(out);
  const r = imports.proxy_get_shared_data(changetype<usize>(k), k.byteLength, base, base + 4, base + 8);
  const s = new Shared();
  if (r == 0) {
    s.value = String.UTF8.decode(taken());
    s.cas = load<u32>(base + 8);
    s.found = true;
  }
  return s;
}

// setShared returns the WasmResult: 0 Ok, 8 CasMismatch.
export function setShared(key: string, value: string, cas: u32): u32 {
  const k = String.UTF8.encode(key);
  const v = String.UTF8.encode(value);
  return imports.proxy_set_shared_data(changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength, cas);
}

export function registerQueue(name: string): u32 {
  const n = String.UTF8.encode(name);
  const base = changetype<usize>(out);
  if (imports.proxy_register_shared_queue(changetype<usize>(n), n.byteLength, base) != 0) return 0;
  return load<u32>(base);
}

export function enqueue(token: u32, data: string): u32 {
  const d = String.UTF8.encode(data);
  return imports.proxy_enqueue_shared_queue(token, changetype<usize>(d), d.byteLength);
}

// dequeue returns null when the queue is empty.
export function dequeue(token: u32): string | null {
  const base = changetype<usize>(out);
  if (imports.proxy_dequeue_shared_queue(token, base, base + 4) != 0) return null;
  return String.UTF8.decode(taken());
}

export function setBody(typ: i32, length: u32, body: string): u32 {
  const b = String.UTF8.encode(body);
  return proxy_set_buffer_bytes(typ, 0, length, changetype<usize>(b), b.byteLength);
}
