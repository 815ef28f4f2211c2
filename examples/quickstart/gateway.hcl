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

# /api/: authenticated, authorized, rate limited per user, A/B split by a Wasm filter, compressed
# and cached.
pipeline "api" {
  match {
    path_prefix = "/api/"
  }
  strip_prefix = "/api"

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

  filter "cache" {
    max_bytes     = "16MiB"
    default_ttl   = "5s"
    status_header = true
  }

  balancer {
    upstream = upstream.demo
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
