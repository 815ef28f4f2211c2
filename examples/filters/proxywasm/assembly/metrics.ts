// metrics: a counter of requests, a gauge of requests in flight and a histogram of response
// body sizes, exported by Sluice on /metrics.
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, FilterDataStatusValues, Counter, Gauge, Histogram } from "@solo-io/proxy-runtime";
import { record_metric } from "@solo-io/proxy-runtime/runtime";

class MetricsRoot extends RootContext {
  requests: Counter | null = null;
  inflight: Gauge | null = null;
  sizes: Histogram | null = null;
  createContext(context_id: u32): Context { return new Metrics(context_id, this); }
  onConfigure(size: u32): bool {
    this.requests = new Counter("requests_total");
    this.inflight = new Gauge("inflight");
    this.sizes = new Histogram("response_body_bytes");
    return true;
  }
}

class Metrics extends Context {
  constructor(context_id: u32, root: MetricsRoot) { super(context_id, root); }
  onRequestHeaders(n: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.root_context as MetricsRoot;
    (root.requests as Counter).increment(1);
    (root.inflight as Gauge).increment(1);
    return FilterHeadersStatusValues.Continue;
  }
  onResponseBody(size: usize, end_of_stream: bool): FilterDataStatusValues {
    const root = this.root_context as MetricsRoot;
    (root.inflight as Gauge).increment(-1);
    record_metric((root.sizes as Histogram).metric_id, <u64>size);
    return FilterDataStatusValues.Continue;
  }
}

registerRootContext((id: u32) => { return new MetricsRoot(id); }, "metrics");
