// tick_counter: counts proxy_on_tick calls on its root context and reports them on every response.
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context } from "@solo-io/proxy-runtime";
import { set_tick_period_milliseconds } from "@solo-io/proxy-runtime/runtime";

let ticks: u32 = 0;

class TickRoot extends RootContext {
  createContext(context_id: u32): Context { return new TickCounter(context_id, this); }
  onConfigure(size: u32): bool {
    set_tick_period_milliseconds(20);
    return true;
  }
  onTick(): void { ticks++; }
}

class TickCounter extends Context {
  constructor(context_id: u32, root: TickRoot) { super(context_id, root); }
  onResponseHeaders(n: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("x-pw-ticks", ticks.toString());
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((id: u32) => { return new TickRoot(id); }, "tick_counter");
