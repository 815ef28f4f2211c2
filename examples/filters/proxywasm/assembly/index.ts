// One module, eight proxy-wasm filters: each registers a root context under its own name, and
// the filter's root_id picks which one serves it (as Envoy's root_id does). Built with the
// AssemblyScript proxy-wasm SDK (@solo-io/proxy-runtime 0.1.8, ABI 0.2.0) — see README.md.
export * from "@solo-io/proxy-runtime/proxy";
import "./addheaders";
import "./localresponse";
import "./bodyrewrite";
import "./httpauth";
import "./tickcounter";
import "./sharedcas";
import "./sharedqueue";
import "./metrics";
