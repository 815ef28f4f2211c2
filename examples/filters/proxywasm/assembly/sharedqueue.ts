// shared_queue: each request enqueues its path; the root context drains the queue when told it
// is ready (proxy_on_queue_ready) and responses report how many items it has drained.
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context } from "@solo-io/proxy-runtime";
import { registerQueue, enqueue, dequeue } from "./raw";

let token: u32 = 0;
let drained: u32 = 0;

class QueueRoot extends RootContext {
  createContext(context_id: u32): Context { return new Queue(context_id, this); }
  onConfigure(size: u32): bool {
    token = registerQueue("paths");
    return token != 0;
  }
  onQueueReady(t: u32): void {
    while (dequeue(t) !== null) drained++;
  }
}

class Queue extends Context {
  constructor(context_id: u32, root: QueueRoot) { super(context_id, root); }
  onRequestHeaders(n: u32, end_of_stream: bool): FilterHeadersStatusValues {
    enqueue(token, stream_context.headers.request.get(":path"));
    return FilterHeadersStatusValues.Continue;
  }
  onResponseHeaders(n: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("x-pw-drained", drained.toString());
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((id: u32) => { return new QueueRoot(id); }, "shared_queue");
