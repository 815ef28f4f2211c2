// http_auth: asks the "auth" upstream (proxy_http_call) whether the request's x-token may pass,
// pausing the request until the answer comes; 200 resumes it, anything else answers 403.
import { RootContext, Context, BaseContext, registerRootContext, FilterHeadersStatusValues, stream_context, send_local_response, GrpcStatusValues, HeaderPair, Headers } from "@solo-io/proxy-runtime";

class HTTPAuthRoot extends RootContext {
  createContext(context_id: u32): Context { return new HTTPAuth(context_id, this); }
}

function pair(k: string, v: string): HeaderPair {
  return new HeaderPair(String.UTF8.encode(k), String.UTF8.encode(v));
}

class HTTPAuth extends Context {
  constructor(context_id: u32, root: HTTPAuthRoot) { super(context_id, root); }
  onRequestHeaders(n: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const headers: Headers = [];
    headers.push(pair(":method", "GET"));
    headers.push(pair(":path", "/check"));
    headers.push(pair(":authority", "auth"));
    headers.push(pair("x-token", stream_context.headers.request.get("x-token")));
    this.root_context.httpCall("auth", headers, new ArrayBuffer(0), [], 2000, this,
      (origin: Context, nheaders: u32, body_size: usize, trailers: u32): void => {
        const status = stream_context.headers.http_callback.get(":status");
        if (nheaders > 0 && status == "200") {
          stream_context.headers.request.add("x-pw-auth", "passed");
          origin.continueRequest();
          return;
        }
        send_local_response(403, "forbidden", String.UTF8.encode("forbidden by the auth service\n"), [], GrpcStatusValues.InvalidCode);
      });
    return FilterHeadersStatusValues.StopIteration;
  }
}

registerRootContext((id: u32) => { return new HTTPAuthRoot(id); }, "http_auth");
