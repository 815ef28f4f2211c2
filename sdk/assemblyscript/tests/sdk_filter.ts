// A filter exercising the SDK's accessors; tests/run.mjs checks what it did through the fake host.
import { config, Filter, Json, Next, Request, Response, setFilter, enableFeatures, FEATURE_BUFFER_REQUEST } from "../assembly/index";
export { handle_request, handle_response } from "../assembly/index";

class Probe extends Filter {
  handleRequest(req: Request, resp: Response): Next {
    const h = req.headers;
    const long = h.get("x-long");
    h.set("x-long-len", (long == null ? -1 : long.length).toString());
    h.set("x-many", h.values("X-MANY").join(","));
    h.set("x-names", h.names().join(","));
    h.set("x-absent", h.has("absent") ? "present" : "absent");
    h.set("x-uri", req.uri + " " + req.method);
    const cfg = Json.parse(config());
    const items = cfg.get("list")!.items();
    h.set("x-config", cfg.get("name")!.toString() + " " + items.length.toString() + " " + items[1].toInt().toString());
    enableFeatures(FEATURE_BUFFER_REQUEST);
    const body = req.body.readAll();
    req.body.writeString("len=" + body.length.toString());
    if (req.uri == "/deny") {
      resp.status = 403;
      resp.body.writeString("no");
      return Next.respond();
    }
    return Next.continue(42);
  }

  handleResponse(reqCtx: u32, req: Request, resp: Response, isError: bool): void {
    resp.headers.set("x-ctx", reqCtx.toString() + " " + resp.status.toString());
  }
}

setFilter(new Probe());
