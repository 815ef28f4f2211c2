// sluice-filter: write Sluice (http-wasm) gateway filters in AssemblyScript.
//
//   import { Filter, Request, Response, Next, setFilter } from "sluice-filter/assembly";
//   export { handle_request, handle_response, sluice_abort } from "sluice-filter/assembly";
//
//   class Hello extends Filter {
//     handleRequest(req: Request, resp: Response): Next {
//       req.headers.set("x-hello", "world");
//       return Next.continue(0);
//     }
//   }
//   setFilter(new Hello());
//
// Build: asc filter.ts -O --runtime incremental --exportStart _initialize
//          --use abort=<path to this file>/sluice_abort -o filter.wasm
// (see README.md). Strings are UTF-8 on the wire and UTF-16 in AssemblyScript; the *Bytes
// accessors skip that conversion and return views of one scratch buffer, valid until the next call.

import * as host from "./host";
export * from "./json";

export const REQUEST: u32 = 0;
export const RESPONSE: u32 = 1;

export const FEATURE_BUFFER_REQUEST: u32 = 1;
export const FEATURE_BUFFER_RESPONSE: u32 = 2;
export const FEATURE_TRAILERS: u32 = 4;

export const LOG_DEBUG: i32 = -1;
export const LOG_INFO: i32 = 0;
export const LOG_WARN: i32 = 1;
export const LOG_ERROR: i32 = 2;

// The scratch buffer getters read into; it grows when a value is larger.
let scratch = new Uint8Array(2048);

function getValue(fn: (buf: usize, limit: u32) => u32): Uint8Array {
  let n = fn(scratch.dataStart, scratch.length);
  if (<i32>n > scratch.length) {
    scratch = new Uint8Array(n);
    n = fn(scratch.dataStart, scratch.length);
  }
  return scratch.subarray(0, n);
}

function utf8(s: string): ArrayBuffer {
  return String.UTF8.encode(s);
}

// Outgoing names and values are encoded into two reusable buffers rather than a fresh ArrayBuffer
// per call: on the hot path a filter then allocates only for the strings it reads.
let nameBuf = new ArrayBuffer(256);
let valueBuf = new ArrayBuffer(1024);
let nameLen: u32 = 0;
let valueLen: u32 = 0;

function encName(s: string): usize {
  const n = String.UTF8.byteLength(s);
  if (n > nameBuf.byteLength) nameBuf = new ArrayBuffer(n * 2);
  nameLen = <u32>String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, changetype<usize>(nameBuf));
  return changetype<usize>(nameBuf);
}

function encValue(s: string): usize {
  const n = String.UTF8.byteLength(s);
  if (n > valueBuf.byteLength) valueBuf = new ArrayBuffer(n * 2);
  valueLen = <u32>String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, changetype<usize>(valueBuf));
  return changetype<usize>(valueBuf);
}

function str(b: Uint8Array): string {
  return String.UTF8.decodeUnsafe(b.dataStart, b.length);
}

/** Asks the host for features; returns the set now enabled. */
export function enableFeatures(features: u32): u32 {
  return host.enable_features(features);
}

/** Writes a message to the gateway's log. */
export function log(level: i32, msg: string): void {
  const b = utf8(msg);
  host.log(level, changetype<usize>(b), b.byteLength);
}

/** The filter's configuration (the HCL config object as JSON), as a copy. */
export function config(): Uint8Array {
  return getValue(host.get_config).slice();
}

/** A header set; names are case-insensitive. */
export class Headers {
  constructor(private kind: u32) {}

  private list(name: string): Uint8Array {
    const n = encName(name);
    let cl = host.get_header_values(this.kind, n, nameLen, scratch.dataStart, scratch.length);
    if (<i32>(<u32>cl) > scratch.length) {
      scratch = new Uint8Array(<u32>cl);
      cl = host.get_header_values(this.kind, n, nameLen, scratch.dataStart, scratch.length);
    }
    return scratch.subarray(0, <u32>cl);
  }

  /** The first value of name as a scratch view, or null. */
  getBytes(name: string): Uint8Array | null {
    const l = this.list(name);
    if (l.length == 0) return null;
    const end = l.indexOf(0);
    return l.subarray(0, end < 0 ? l.length : end);
  }

  /** The first value of name, or null. */
  get(name: string): string | null {
    const v = this.getBytes(name);
    return v == null ? null : str(v);
  }

  /** Whether name is present (nothing is copied). */
  has(name: string): bool {
    const n = encName(name);
    return (host.get_header_values(this.kind, n, nameLen, 0, 0) >> 32) > 0;
  }

  /** Every value of name. */
  values(name: string): string[] {
    return splitNUL(this.list(name));
  }

  /** Every header name, lower-cased. */
  names(): string[] {
    let cl = host.get_header_names(this.kind, scratch.dataStart, scratch.length);
    if (<i32>(<u32>cl) > scratch.length) {
      scratch = new Uint8Array(<u32>cl);
      cl = host.get_header_names(this.kind, scratch.dataStart, scratch.length);
    }
    return splitNUL(scratch.subarray(0, <u32>cl));
  }

  /** Replaces every value of name. */
  set(name: string, value: string): void {
    const n = encName(name);
    const v = encValue(value);
    host.set_header_value(this.kind, n, nameLen, v, valueLen);
  }

  /** Appends a value. */
  add(name: string, value: string): void {
    const n = encName(name);
    const v = encValue(value);
    host.add_header_value(this.kind, n, nameLen, v, valueLen);
  }

  /** Removes every value of name. */
  remove(name: string): void {
    const n = encName(name);
    host.remove_header(this.kind, n, nameLen);
  }
}

function splitNUL(l: Uint8Array): string[] {
  const out = new Array<string>();
  let start = 0;
  for (let i = 0; i < l.length; i++) {
    if (l[i] == 0) {
      out.push(str(l.subarray(start, i)));
      start = i + 1;
    }
  }
  return out;
}

/** A request or response body; reads continue where the last stopped. */
export class Body {
  constructor(private kind: u32) {}

  /** Reads the rest of the body. */
  readAll(): Uint8Array {
    let out = new Uint8Array(0);
    const chunk = new Uint8Array(4096);
    while (true) {
      const el = host.read_body(this.kind, chunk.dataStart, chunk.length);
      const n = <i32>(<u32>el);
      if (n > 0) {
        const grown = new Uint8Array(out.length + n);
        grown.set(out);
        grown.set(chunk.subarray(0, n), out.length);
        out = grown;
      }
      if ((el >> 32) == 1) return out;
    }
  }

  /** Appends bytes; the first write of a phase replaces the body. */
  write(b: Uint8Array): void {
    host.write_body(this.kind, b.dataStart, b.length);
  }

  /** Appends a string as UTF-8. */
  writeString(s: string): void {
    const v = encValue(s);
    host.write_body(this.kind, v, valueLen);
  }
}

/** The current request. */
export class Request {
  readonly headers: Headers = new Headers(REQUEST);
  readonly body: Body = new Body(REQUEST);

  get method(): string {
    return str(getValue(host.get_method));
  }
  set method(m: string) {
    const b = utf8(m);
    host.set_method(changetype<usize>(b), b.byteLength);
  }
  /** The URI as received: path and ?query, percent-encoded. */
  get uri(): string {
    return str(getValue(host.get_uri));
  }
  set uri(u: string) {
    const b = utf8(u);
    host.set_uri(changetype<usize>(b), b.byteLength);
  }
  get protocolVersion(): string {
    return str(getValue(host.get_protocol_version));
  }
  /** The client's "ip:port". */
  get sourceAddr(): string {
    return str(getValue(host.get_source_addr));
  }
}

/** The response: written by the filter, or produced upstream. */
export class Response {
  readonly headers: Headers = new Headers(RESPONSE);
  readonly body: Body = new Body(RESPONSE);

  get status(): u32 {
    return host.get_status_code();
  }
  set status(code: u32) {
    host.set_status_code(code);
  }
}

/** What handleRequest decided: respond here, or continue with a request context. */
export class Next {
  constructor(public next: bool, public reqCtx: u32) {}
  static respond(): Next {
    return new Next(false, 0);
  }
  static continue(reqCtx: u32): Next {
    return new Next(true, reqCtx);
  }
}

/** A filter: override handleRequest, and handleResponse if needed. */
export class Filter {
  handleRequest(req: Request, resp: Response): Next {
    return Next.continue(0);
  }
  handleResponse(reqCtx: u32, req: Request, resp: Response, isError: bool): void {}
}

let current: Filter | null = null;
const theRequest = new Request();
const theResponse = new Response();

/** Registers the filter; call it at the top level of the entry file. */
export function setFilter(f: Filter): void {
  current = f;
}

export function handle_request(): u64 {
  const f = current;
  if (f == null) {
    log(LOG_ERROR, "sluice-filter: no filter registered: call setFilter at top level");
    unreachable();
  }
  const n = f!.handleRequest(theRequest, theResponse);
  return n.next ? ((<u64>n.reqCtx) << 32) | 1 : 0;
}

export function handle_response(reqCtx: u32, isError: u32): void {
  const f = current;
  if (f != null) f.handleResponse(reqCtx, theRequest, theResponse, isError == 1);
}

/** The abort handler (build with --use abort=…/sluice_abort): logs the message, then traps. */
export function sluice_abort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  log(LOG_ERROR, "abort: " + (message ? message : "") + " at " + (fileName ? fileName : "") + ":" + line.toString());
  unreachable();
}
