# The quickstart: what `make run` serves. Two demo upstreams (testbed echo servers on 9001 and
# 9002) behind one gateway on 127.0.0.1:8080; admin API on 127.0.0.1:9901; traces and access logs
# go to the OTLP receiver `make run` starts on 127.0.0.1:4318, which prints each trace as a tree.

server {
  listen     = "127.0.0.1:8080"
  request_id = "X-Request-Id"
}

admin {
  listen = "127.0.0.1:9901"
}

telemetry {
  service_name = "sluice-quickstart"
  traces {
    exporter        = "otlp"
    endpoint        = "http://127.0.0.1:4318"
    sample_ratio    = 1.0
    response_header = "X-Trace-Id"
  }
}

upstream "demo" {
  policy = "p2c_ewma"
  target {
    address = "127.0.0.1:9001"
  }
  target {
    address = "127.0.0.1:9002"
  }
  health_check {
    path     = "/healthz"
    interval = "2s"
  }
  retry {
    attempts = 1
  }
}

# The A/B variants: "a" is served by the first demo upstream, "b" by the second.
upstream "demo-a" {
  target {
    address = "127.0.0.1:9001"
  }
}

upstream "demo-b" {
  target {
    address = "127.0.0.1:9002"
  }
}

# /api/: authenticated, authorized, rate limited per user, compressed, then split A/B: the Wasm
# filter sets X-Variant and `route` routes the request again, to api-a or api-b by that header.
pipeline "api" {
  match {
    path_prefix = "/api/"
  }

  filter "otel_log" {
    output          = "stdout"
    format          = "text"
    request_headers = ["user-agent", "x-request-id"]
  }

  filter "jwt" {
    issuer      = "https://sluice.quickstart/"
    audiences   = ["demo"]
    algorithms  = ["HS256"]
    hmac_secret = env("SLUICE_DEMO_JWT_SECRET", "quickstart-demo-secret-change-me-0123456789")
    forward_claims = {
      sub = "X-User-Id"
    }
  }

  filter "authorize" {
    rule {
      methods        = ["DELETE"]
      path_prefix    = "/api/admin/"
      require_claims = { scope = "demo:admin" }
    }
  }

  filter "rate_limit" {
    key    = "claim:sub"
    limit  = 10
    period = "1s"
    burst  = 5 # five at once, then one per 100ms
  }

  filter "wasm" {
    name     = "abrouter"
    module   = "filters/abrouter.wasm" # built by `make run` from examples/filters/go/abrouter
    config   = { header = "x-variant", cookie = "ab", percent_b = 50 }
    timeout  = "50ms"
    pool_min = 1
    pool_max = 4 # a Go guest costs ~3 MiB per instance
    # abrouter passes the variant to handle_response in reqCtx and keeps nothing else per request:
    # its instance goes back to the pool while the request is upstream.
    release_between_phases = true
  }

  filter "compress" {
    min_size = "256B"
  }

  route {} # routing runs again on the request as the filters left it
}

# The variants serve only what api routed to them (routed_only: a client's own X-Variant header
# cannot skip api's authentication), each with a cache of its own.
pipeline "api-a" {
  match {
    path_prefix = "/api/"
    routed_only = true
    header "x-variant" { exact = "a" }
  }
  strip_prefix = "/api"

  filter "cache" {
    max_bytes     = "16MiB"
    default_ttl   = "5s"
    status_header = true
  }

  balancer {
    upstream = upstream.demo-a
  }
}

pipeline "api-b" {
  match {
    path_prefix = "/api/"
    routed_only = true
    header "x-variant" { exact = "b" }
  }
  strip_prefix = "/api"

  filter "cache" {
    max_bytes     = "16MiB"
    default_ttl   = "5s"
    status_header = true
  }

  balancer {
    upstream = upstream.demo-b
  }
}

# Everything else: rate limited per client address, compressed.
pipeline "public" {
  match {
    path_prefix = "/"
  }

  filter "headers" {
    request_set  = { "X-Gateway" = "sluice" }
    response_add = { "X-Served-By" = "sluice" }
  }

  filter "rate_limit" {
    key    = "ip"
    limit  = 50
    period = "1s" # no burst: 50 at once (the default burst is the limit), then one per 20ms
  }

  filter "compress" {}

  balancer {
    upstream = upstream.demo
  }
}
