// apikey: admits only requests carrying a known API key; answers 401 itself otherwise, strips the
// key before the request goes upstream, and names the consumer in an x-consumer header both ways.
// The reference filter: every SDK language implements this same behaviour.
//
// Config: {"header": "X-API-Key", "keys": {"<key>": "<consumer>", ...}}
import { config, Filter, Json, Next, Request, Response, setFilter } from "../../../sdk/assemblyscript/assembly/index";
export { handle_request, handle_response } from "../../../sdk/assemblyscript/assembly/index";

class ApiKey extends Filter {
  header: string = "x-api-key";
  keys: string[] = []; // sorted; reqCtx is index + 1
  consumers: string[] = [];
  loaded: bool = false;

  // Reads the configuration; run once when the instance starts (below), so a bad one fails the
  // filter's load with the message thrown here.
  load(): void {
    const doc = Json.parse(config());
    const h = doc.get("header");
    if (h) this.header = h.toString();
    const k = doc.get("keys");
    if (k) {
      const names = k.keys();
      const vals = k.memberValues();
      const order = names.slice();
      order.sort((a: string, b: string): i32 => (a < b ? -1 : a > b ? 1 : 0));
      for (let i = 0; i < order.length; i++) {
        this.keys.push(order[i]);
        const v = vals[names.indexOf(order[i])];
        if (!v.isString()) throw new Error("apikey: consumer names must be strings"); // keys are credentials: never shown
        this.consumers.push(v.toString());
      }
    }
    this.loaded = true;
  }

  handleRequest(req: Request, resp: Response): Next {
    if (!this.loaded) this.load();
    const got = req.headers.get(this.header);
    if (got != null) {
      const i = this.keys.indexOf(got);
      if (i >= 0) {
        req.headers.remove(this.header);
        req.headers.set("x-consumer", this.consumers[i]);
        return Next.continue(<u32>i + 1);
      }
    }
    resp.status = 401;
    resp.headers.set("content-type", "text/plain; charset=utf-8");
    resp.headers.set("www-authenticate", "ApiKey");
    resp.body.writeString("invalid API key\n");
    return Next.respond();
  }

  handleResponse(reqCtx: u32, req: Request, resp: Response, isError: bool): void {
    if (isError || reqCtx == 0 || reqCtx > <u32>this.consumers.length) return;
    resp.headers.set("x-consumer", this.consumers[reqCtx - 1]);
  }
}

const filter = new ApiKey();
filter.load();
setFilter(filter);
