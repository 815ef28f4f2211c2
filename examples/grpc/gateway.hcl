# A gRPC service behind Sluice: every call is authenticated (jwt on the `authorization` metadata),
# rate limited per caller and logged with its gRPC status; the gateway's own refusals reach gRPC
# clients as gRPC statuses (UNAUTHENTICATED, RESOURCE_EXHAUSTED, UNAVAILABLE, …). See README.md.

server {
  listen    = "127.0.0.1:8080"
  # HTTP/2 with prior knowledge (h2c) on the cleartext port, beside HTTP/1.1. With a tls block,
  # use ["http1", "h2"]: gRPC clients then negotiate h2 by ALPN.
  protocols = ["http1", "h2c"]
}

upstream "demo" {
  target {
    address = "127.0.0.1:50051" # grpcdemo serve
  }
  protocol = "h2c" # gRPC needs HTTP/2 to the service: h2c here, "h2" for a TLS target

  health_check {
    type     = "grpc" # grpc.health.v1.Health/Check: healthy while it answers SERVING
    service  = ""     # the server as a whole; or a service name such as "grpc.testing.TestService"
    interval = "2s"
  }

  retry {
    attempts = 1
    grpc_on  = ["unavailable"] # a call answered UNAVAILABLE before any message: try another target
  }

  timeouts {
    request = "30s" # also the longest a call (a stream included) may last; a shorter grpc-timeout wins
  }
}

pipeline "grpc" {
  match {
    path_prefix = "/grpc.testing.TestService/"
  }

  filter "otel_log" {
    output = "stdout"
    format = "text" # each line carries status= (HTTP) and grpc_status=
  }

  filter "jwt" {
    algorithms  = ["HS256"]
    hmac_secret = env("SLUICE_DEMO_JWT_SECRET", "grpc-demo-secret-change-me-0123456789abcdef")
  }

  filter "rate_limit" {
    key    = "claim:sub" # per caller
    limit  = 20
    period = "10s"
  }

  balancer {
    upstream = upstream.demo
  }
}
