// local_response: answers requests under /deny itself (proxy_send_local_response).
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context, send_local_response, GrpcStatusValues, HeaderPair } from "@solo-io/proxy-runtime";

class LocalResponseRoot extends RootContext {
  createContext(context_id: u32): Context { return new LocalResponse(context_id, this); }
}

class LocalResponse extends Context {
  constructor(context_id: u32, root: LocalResponseRoot) { super(context_id, root); }
  onRequestHeaders(n: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const path = stream_context.headers.request.get(":path");
    if (path.startsWith("/deny")) {
      const headers = new Array<HeaderPair>();
      headers.push(new HeaderPair(String.UTF8.encode("x-pw-local"), String.UTF8.encode("1")));
      send_local_response(403, "denied", String.UTF8.encode("denied by proxy-wasm\n"), headers, GrpcStatusValues.InvalidCode);
      return FilterHeadersStatusValues.StopIteration;
    }
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((id: u32) => { return new LocalResponseRoot(id); }, "local_response");
