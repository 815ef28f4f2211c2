// An in-process fake of the Sluice host for testing AssemblyScript filters with node: load the
// compiled .wasm, set up a request, run both phases, inspect the outcome.
//
//   const host = new FakeHost({ config: '{"keys":{"alpha":"team-a"}}', headers: [["X-API-Key", "alpha"]] });
//   await host.load(fs.readFileSync("build/filter.wasm"));
//   const out = host.run((h) => { h.status = 200; });   // the upstream
//   assert.equal(host.header(1, "x-consumer"), "team-a");
//
// It follows the ABI: fit-or-nothing buffers, lower-case names, NUL-terminated lists.

const enc = new TextEncoder();
const dec = new TextDecoder();

export class FakeHost {
  constructor({ config = "", method = "GET", uri = "/", headers = [], body = "", sourceAddr = "127.0.0.1:40000" } = {}) {
    this.config = enc.encode(config);
    this.method = method;
    this.uri = uri;
    this.sourceAddr = sourceAddr;
    this.reqHeaders = headers.map(([n, v]) => [n, v]);
    this.respHeaders = [];
    this.reqBody = enc.encode(body);
    this.respBody = new Uint8Array(0);
    this.status = 200;
    this.enabled = 0;
    this.logs = [];
    this.read = [0, 0];
    this.written = [false, false];
  }

  /** Instantiates the module and runs its start function (_initialize), as Sluice does. */
  async load(bytes) {
    const { instance } = await WebAssembly.instantiate(bytes, { http_handler: this.#imports() });
    this.exports = instance.exports;
    if (this.exports._initialize) this.exports._initialize();
    return this;
  }

  /** Runs handle_request, then (if it continued) upstream(this) and handle_response. */
  run(upstream) {
    this.#phase();
    const r = this.exports.handle_request();
    const next = (r & 1n) === 1n;
    const reqCtx = Number(r >> 32n);
    if (!next) return { next, reqCtx: 0 };
    if (upstream) upstream(this);
    this.#phase();
    this.exports.handle_response(reqCtx, 0);
    return { next, reqCtx };
  }

  /** The first value of a header of kind (0 request, 1 response), or undefined. */
  header(kind, name) {
    const f = this.#headers(kind).find(([n]) => n.toLowerCase() === name.toLowerCase());
    return f ? f[1] : undefined;
  }

  body(kind) {
    return dec.decode(kind === 0 ? this.reqBody : this.respBody);
  }

  #phase() {
    this.written = [false, false];
    this.read[1] = 0;
  }

  #headers(kind) {
    if (kind === 0) return this.reqHeaders;
    if (kind === 1) return this.respHeaders;
    throw new Error("fake host: trailers are not supported");
  }

  #mem() {
    return new Uint8Array(this.exports.memory.buffer);
  }

  #str(p, n) {
    return dec.decode(this.#mem().subarray(p, p + n));
  }

  #put(buf, limit, bytes) {
    if (bytes.length <= limit) this.#mem().set(bytes, buf);
    return bytes.length;
  }

  #list(buf, limit, items) {
    if (items.length === 0) return 0n;
    const all = enc.encode(items.map((s) => s + "\0").join(""));
    this.#put(buf, limit, all);
    return (BigInt(items.length) << 32n) | BigInt(all.length);
  }

  #imports() {
    const h = this;
    return {
      enable_features: (f) => (h.enabled |= f & 3),
      get_config: (b, l) => h.#put(b, l, h.config),
      log: (level, p, n) => h.logs.push(h.#str(p, n)),
      log_enabled: (level) => (level >= 0 ? 1 : 0),
      get_method: (b, l) => h.#put(b, l, enc.encode(h.method)),
      set_method: (p, n) => (h.method = h.#str(p, n)),
      get_uri: (b, l) => h.#put(b, l, enc.encode(h.uri || "/")),
      set_uri: (p, n) => (h.uri = h.#str(p, n)),
      get_protocol_version: (b, l) => h.#put(b, l, enc.encode("HTTP/1.1")),
      get_source_addr: (b, l) => h.#put(b, l, enc.encode(h.sourceAddr)),
      get_header_names: (k, b, l) => {
        const names = [...new Set(h.#headers(k).map(([n]) => n.toLowerCase()))];
        return h.#list(b, l, names);
      },
      get_header_values: (k, np, nn, b, l) => {
        const name = h.#str(np, nn).toLowerCase();
        return h.#list(b, l, h.#headers(k).filter(([n]) => n.toLowerCase() === name).map(([, v]) => v));
      },
      set_header_value: (k, np, nn, vp, vn) => {
        const name = h.#str(np, nn);
        const rest = h.#headers(k).filter(([n]) => n.toLowerCase() !== name.toLowerCase());
        rest.push([name, h.#str(vp, vn)]);
        h.#headers(k).splice(0, Infinity, ...rest);
      },
      add_header_value: (k, np, nn, vp, vn) => h.#headers(k).push([h.#str(np, nn), h.#str(vp, vn)]),
      remove_header: (k, np, nn) => {
        const name = h.#str(np, nn).toLowerCase();
        const rest = h.#headers(k).filter(([n]) => n.toLowerCase() !== name);
        h.#headers(k).splice(0, Infinity, ...rest);
      },
      read_body: (k, b, l) => {
        if (l === 0) throw new Error("fake host: read_body with buf_limit 0");
        const body = k === 0 ? h.reqBody : h.respBody;
        const chunk = body.subarray(h.read[k], h.read[k] + l);
        h.#mem().set(chunk, b);
        h.read[k] += chunk.length;
        return (BigInt(h.read[k] >= body.length ? 1 : 0) << 32n) | BigInt(chunk.length);
      },
      write_body: (k, p, n) => {
        const data = h.#mem().slice(p, p + n);
        const old = h.written[k] ? (k === 0 ? h.reqBody : h.respBody) : new Uint8Array(0);
        const next = new Uint8Array(old.length + data.length);
        next.set(old);
        next.set(data, old.length);
        if (k === 0) h.reqBody = next;
        else h.respBody = next;
        h.written[k] = true;
      },
      get_status_code: () => h.status,
      set_status_code: (c) => (h.status = c),
    };
  }
}
