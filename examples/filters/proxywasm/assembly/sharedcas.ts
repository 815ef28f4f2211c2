// shared_cas: counts requests in shared data (shared by every instance of the filter) with a
// compare-and-swap loop, and reports the count it stored.
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context } from "@solo-io/proxy-runtime";
import { getShared, setShared } from "./raw";

class SharedCASRoot extends RootContext {
  createContext(context_id: u32): Context { return new SharedCAS(context_id, this); }
}

class SharedCAS extends Context {
  constructor(context_id: u32, root: SharedCASRoot) { super(context_id, root); }
  onRequestHeaders(n: u32, end_of_stream: bool): FilterHeadersStatusValues {
    let retries = 0;
    for (;;) {
      const cur = getShared("hits");
      const next = (cur.found ? I32.parseInt(cur.value) : 0) + 1;
      const r = setShared("hits", next.toString(), cur.cas);
      if (r == 0) {
        stream_context.headers.request.add("x-pw-hits", next.toString());
        stream_context.headers.request.add("x-pw-retries", retries.toString());
        break;
      }
      retries++;
    }
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((id: u32) => { return new SharedCASRoot(id); }, "shared_cas");
