# A proxy-wasm (Envoy ABI) filter in a Sluice pipeline: the AssemblyScript examples built with the
# third-party SDK @solo-io/proxy-runtime (`make proxywasm-example` builds the module), two of them
# chosen by root_id as Envoy would. Run: make proxywasm-example && bin/sluice run examples/proxywasm/gateway.hcl
#   curl -i localhost:8080/hello       (headers added by the add_headers filter)
#   curl -i localhost:8080/deny/me     (answered by the local_response filter: 403)

server {
  listen = "127.0.0.1:8080"
}

upstream "demo" {
  target {
    address = "127.0.0.1:9001"
  }
}

pipeline "demo" {
  match {
    path_prefix = "/"
  }
  filter "wasm" {
    name       = "deny"
    module     = "../filters/build/proxywasm/examples.wasm"
    root_id    = "local_response"
    config_raw = "{}"
  }
  filter "wasm" {
    name       = "headers"
    module     = "../filters/build/proxywasm/examples.wasm"
    root_id    = "add_headers"
    config_raw = "hello from proxy-wasm"
  }
  # The answer (the balancer behind it is never reached).
  filter "respond" {
    body = "hello\n"
  }
  balancer {
    upstream = upstream.demo
  }
}
