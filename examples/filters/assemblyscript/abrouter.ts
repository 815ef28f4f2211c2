// abrouter: splits traffic between variants "a" and "b". Sets a request header (x-variant) the
// balancer can hash on, keeps each client on its variant with a cookie, and assigns new clients by
// an FNV-1a hash of their IP so the split is stable for clients that drop cookies.
//
// Config: {"header": "x-variant", "cookie": "ab", "percent_b": 20}
import { config, Filter, Json, Next, Request, Response, setFilter } from "../../../sdk/assemblyscript/assembly/index";
export { handle_request, handle_response } from "../../../sdk/assemblyscript/assembly/index";

const STICKY: u32 = 0;
const NEW_A: u32 = 1;
const NEW_B: u32 = 2;

class ABRouter extends Filter {
  header: string = "x-variant";
  cookie: string = "ab";
  percentB: u32 = 50;
  loaded: bool = false;

  load(): void {
    const doc = Json.parse(config());
    const h = doc.get("header");
    if (h) this.header = h.toString();
    const c = doc.get("cookie");
    if (c) this.cookie = c.toString();
    const p = doc.get("percent_b");
    if (p) {
      const v = p.toInt();
      if (v < 0 || v > 100) unreachable(); // a bad config fails loudly on first use
      this.percentB = <u32>v;
    }
    this.loaded = true;
  }

  handleRequest(req: Request, resp: Response): Next {
    if (!this.loaded) this.load();
    let variant = this.fromCookie(req);
    let ctx = STICKY;
    if (variant == "") {
      variant = "a";
      ctx = NEW_A;
      if (bucket(req.sourceAddr) < this.percentB) {
        variant = "b";
        ctx = NEW_B;
      }
    }
    req.headers.set(this.header, variant);
    return Next.continue(ctx);
  }

  handleResponse(reqCtx: u32, req: Request, resp: Response, isError: bool): void {
    if (isError || reqCtx == STICKY) return;
    const v = reqCtx == NEW_B ? "b" : "a";
    resp.headers.add("set-cookie", this.cookie + "=" + v + "; Path=/; Max-Age=2592000; SameSite=Lax");
  }

  fromCookie(req: Request): string {
    const lines = req.headers.values("cookie");
    const prefix = this.cookie + "=";
    for (let i = 0; i < lines.length; i++) {
      const parts = lines[i].split(";");
      for (let j = 0; j < parts.length; j++) {
        const c = parts[j].trim();
        if (c.startsWith(prefix)) {
          const v = c.substring(prefix.length);
          if (v == "a" || v == "b") return v;
        }
      }
    }
    return "";
  }
}

// bucket maps "ip:port" or "[ip]:port" to 0..99 with FNV-1a over the IP's bytes.
export function bucket(addr: string): u32 {
  let end = addr.length;
  const colon = addr.lastIndexOf(":");
  const bracket = addr.lastIndexOf("]");
  if (colon > 0 && colon > bracket) end = colon;
  let start = 0;
  if (addr.charCodeAt(0) == 0x5b) {
    start = 1;
    end = bracket;
  }
  let h: u32 = 2166136261;
  for (let i = start; i < end; i++) {
    h ^= <u32>addr.charCodeAt(i);
    h *= 16777619;
  }
  return h % 100;
}

setFilter(new ABRouter());
