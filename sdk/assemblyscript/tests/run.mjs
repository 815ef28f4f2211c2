// Unit tests of the AssemblyScript SDK: compiles tests/sdk_filter.ts with asc and runs it against
// the fake host. Run with `npm test` (after `npm ci`).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { FakeHost } from "../testing/fakehost.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
mkdirSync(join(root, "build"), { recursive: true });
const out = join(root, "build", "sdk_filter.wasm");
execFileSync(join(root, "node_modules", ".bin", "asc"), [
  "tests/sdk_filter.ts", "-O3", "--runtime", "incremental", "--exportStart", "_initialize",
  "--use", "abort=assembly/index/sluice_abort", "-o", out,
], { cwd: root, stdio: "inherit" });
const wasm = readFileSync(out);

const long = "v".repeat(5000); // larger than the 2 KiB scratch buffer: exercises the retry
const host = await new FakeHost({
  config: '{"name": "probe", "list": ["a", 7, {"x": [1]}]}',
  method: "POST",
  uri: "/a%20b?x=1",
  headers: [["X-Long", long], ["X-Many", "a"], ["x-many", "b"]],
  body: "0123456789".repeat(1000),
}).load(wasm);
const res = host.run((h) => { h.status = 201; });
assert.deepEqual(res, { next: true, reqCtx: 42 });
assert.equal(host.header(0, "x-long-len"), "5000");
assert.equal(host.header(0, "x-many"), "a,b");
// x-many was replaced (so moved last) before the names were read.
assert.equal(host.header(0, "x-names"), "x-long,x-long-len,x-many");
assert.equal(host.header(0, "x-absent"), "absent");
assert.equal(host.header(0, "x-uri"), "/a%20b?x=1 POST");
assert.equal(host.header(0, "x-config"), "probe 3 7");
assert.equal(host.body(0), "len=10000");
assert.equal(host.header(1, "x-ctx"), "42 201");

const deny = await new FakeHost({ uri: "/deny", config: '{"name":"x","list":[1,2]}' }).load(wasm);
assert.deepEqual(deny.run(() => assert.fail("upstream called")), { next: false, reqCtx: 0 });
assert.equal(deny.status, 403);
assert.equal(deny.body(1), "no");
console.log("ok");
