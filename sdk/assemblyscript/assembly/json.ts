// A JSON reader for flat configuration objects: walks the raw UTF-8 text on demand, no tree.

/** A JSON value: a view of its UTF-8 text. */
export class Json {
  constructor(public raw: Uint8Array) {}

  static parse(doc: Uint8Array): Json {
    const s = skipSpace(doc, 0);
    const e = valueEnd(doc, s);
    return new Json(doc.subarray(s, e < 0 ? doc.length : e));
  }

  /** The member key of an object, or null. */
  get(key: string): Json | null {
    const keys = this.keys();
    const vals = this.memberValues();
    for (let i = 0; i < keys.length; i++) if (keys[i] == key) return vals[i];
    return null;
  }

  /** An object's member names (escapes \" and \\ decoded). */
  keys(): string[] {
    const out = new Array<string>();
    this.walk(out, null);
    return out;
  }

  /** An object's member values, in the order of keys(). */
  memberValues(): Json[] {
    const out = new Array<Json>();
    this.walk(null, out);
    return out;
  }

  private walk(keys: string[] | null, vals: Json[] | null): void {
    const d = this.raw;
    if (d.length == 0 || d[0] != 0x7b) return; // {
    let i = skipSpace(d, 1);
    while (i < d.length && d[i] == 0x22) {
      const kend = valueEnd(d, i);
      if (kend < 0) return;
      const colon = skipSpace(d, kend);
      if (colon >= d.length || d[colon] != 0x3a) return;
      const vs = skipSpace(d, colon + 1);
      const ve = valueEnd(d, vs);
      if (ve <= vs) return;
      if (keys) keys.push(unquote(d.subarray(i, kend)));
      if (vals) vals.push(new Json(d.subarray(vs, ve)));
      i = skipSpace(d, ve);
      if (i < d.length && d[i] == 0x2c) i = skipSpace(d, i + 1);
    }
  }

  /** An array's items. */
  items(): Json[] {
    const d = this.raw;
    const out = new Array<Json>();
    if (d.length == 0 || d[0] != 0x5b) return out; // [
    let i = skipSpace(d, 1);
    while (i < d.length && d[i] != 0x5d) {
      const e = valueEnd(d, i);
      if (e <= i) return out;
      out.push(new Json(d.subarray(i, e)));
      i = skipSpace(d, e);
      if (i < d.length && d[i] == 0x2c) i = skipSpace(d, i + 1);
    }
    return out;
  }

  isString(): bool {
    return this.raw.length >= 2 && this.raw[0] == 0x22;
  }

  /** The decoded string (for a string value), else the raw text. */
  toString(): string {
    return this.isString() ? unquote(this.raw) : String.UTF8.decodeUnsafe(this.raw.dataStart, this.raw.length);
  }

  /** The value as a non-negative integer, or -1. */
  toInt(): i64 {
    let n: i64 = 0;
    if (this.raw.length == 0) return -1;
    for (let i = 0; i < this.raw.length; i++) {
      const c = this.raw[i];
      if (c < 0x30 || c > 0x39) return -1;
      n = n * 10 + (c - 0x30);
    }
    return n;
  }
}

export function skipSpace(d: Uint8Array, i: i32): i32 {
  while (i < d.length && (d[i] == 0x20 || d[i] == 0x09 || d[i] == 0x0a || d[i] == 0x0d)) i++;
  return i;
}

/** The index after the JSON value starting at i, or -1 if malformed. */
export function valueEnd(d: Uint8Array, i: i32): i32 {
  if (i >= d.length) return -1;
  const c = d[i];
  if (c == 0x22) {
    for (i++; i < d.length; i++) {
      if (d[i] == 0x5c) i++;
      else if (d[i] == 0x22) return i + 1;
    }
    return -1;
  }
  if (c == 0x7b || c == 0x5b) {
    let depth = 0;
    for (; i < d.length; i++) {
      const b = d[i];
      if (b == 0x22) {
        const e = valueEnd(d, i);
        if (e < 0) return -1;
        i = e - 1;
      } else if (b == 0x7b || b == 0x5b) {
        depth++;
      } else if (b == 0x7d || b == 0x5d) {
        if (--depth == 0) return i + 1;
      }
    }
    return -1;
  }
  while (i < d.length) {
    const b = d[i];
    if (b == 0x2c || b == 0x7d || b == 0x5d || b == 0x20 || b == 0x09 || b == 0x0a || b == 0x0d) break;
    i++;
  }
  return i;
}

/** Decodes a JSON string literal (quotes included); handles \" \\ \/ \n \t \r and ASCII \u00XX. */
export function unquote(lit: Uint8Array): string {
  const out = new Uint8Array(lit.length);
  let n = 0;
  for (let i = 1; i < lit.length - 1; i++) {
    let c = lit[i];
    if (c == 0x5c && i + 1 < lit.length - 1) {
      i++;
      c = lit[i];
      if (c == 0x6e) c = 0x0a;
      else if (c == 0x74) c = 0x09;
      else if (c == 0x72) c = 0x0d;
      else if (c == 0x75 && i + 4 < lit.length - 1) {
        c = <u8>hex4(lit, i + 1);
        i += 4;
      }
    }
    out[n++] = c;
  }
  return String.UTF8.decodeUnsafe(out.dataStart, n);
}

function hex4(d: Uint8Array, i: i32): u32 {
  let v: u32 = 0;
  for (let k = 0; k < 4; k++) {
    const c = d[i + k];
    v = v * 16 + (c >= 0x61 ? c - 0x57 : c >= 0x41 ? c - 0x37 : c - 0x30);
  }
  return v;
}
