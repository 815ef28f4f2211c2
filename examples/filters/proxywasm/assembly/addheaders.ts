// add_headers: adds request and response headers, with values from the plugin configuration
// and from properties (request.path, source.address).
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context } from "@solo-io/proxy-runtime";
import { get_property } from "@solo-io/proxy-runtime/runtime";

class AddHeadersRoot extends RootContext {
  createContext(context_id: u32): Context { return new AddHeaders(context_id, this); }
}

class AddHeaders extends Context {
  constructor(context_id: u32, root: AddHeadersRoot) { super(context_id, root); }
  onRequestHeaders(n: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.request.add("x-pw-config", this.root_context.getConfiguration());
    stream_context.headers.request.add("x-pw-path", String.UTF8.decode(get_property("request\0path")));
    stream_context.headers.request.add("x-pw-source", String.UTF8.decode(get_property("source\0address")));
    stream_context.headers.request.add("x-pw-eos", end_of_stream ? "1" : "0");
    stream_context.headers.request.remove("x-remove-me");
    return FilterHeadersStatusValues.Continue;
  }
  onResponseHeaders(n: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("x-pw-response", "added");
    stream_context.headers.response.replace("server", "proxy-wasm");
    const code = get_property("response\0code");
    stream_context.headers.response.add("x-pw-code-bytes", code.byteLength.toString());
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((id: u32) => { return new AddHeadersRoot(id); }, "add_headers");
