// body_rewrite: rewrites the request and response bodies once end_of_stream says they are whole.
import { RootContext, Context, registerRootContext, FilterDataStatusValues, stream_context } from "@solo-io/proxy-runtime";
import { get_buffer_bytes, BufferTypeValues } from "@solo-io/proxy-runtime/runtime";
import { setBody } from "./raw";

class BodyRewriteRoot extends RootContext {
  createContext(context_id: u32): Context { return new BodyRewrite(context_id, this); }
}

class BodyRewrite extends Context {
  constructor(context_id: u32, root: BodyRewriteRoot) { super(context_id, root); }
  onRequestBody(size: usize, end_of_stream: bool): FilterDataStatusValues {
    if (!end_of_stream) return FilterDataStatusValues.StopIterationAndBuffer;
    const body = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.HttpRequestBody, 0, <u32>size));
    setBody(BufferTypeValues.HttpRequestBody, <u32>size, body.toUpperCase());
    stream_context.headers.request.add("x-pw-body-eos", "1");
    return FilterDataStatusValues.Continue;
  }
  onResponseBody(size: usize, end_of_stream: bool): FilterDataStatusValues {
    if (!end_of_stream) return FilterDataStatusValues.StopIterationAndBuffer;
    const body = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.HttpResponseBody, 0, <u32>size));
    setBody(BufferTypeValues.HttpResponseBody, <u32>size, body + " [rewritten]");
    return FilterDataStatusValues.Continue;
  }
}

registerRootContext((id: u32) => { return new BodyRewriteRoot(id); }, "body_rewrite");
