# gRPC-Web for browsers: pages call a gRPC service through Sluice with grpc-web or grpc-web-text
# (unary and server-streaming calls); the gateway speaks gRPC (h2c) to the service. See README.md.

server {
  listen = "127.0.0.1:8080"
}

upstream "demo" {
  target {
    address = "127.0.0.1:50051" # grpcdemo serve
  }
  protocol = "h2c" # gRPC needs HTTP/2 to the service
}

pipeline "grpc-web" {
  match {
    path_prefix = "/grpc.testing.TestService/"
  }

  # First: it answers the CORS preflights, and every answer after it, the gateway's own
  # included, gets the CORS headers a page needs to read it.
  filter "grpc_web" {
    allow_origins = ["http://localhost:3000"] # the page's origin (a dev server here)
  }

  filter "otel_log" {
    output = "stdout"
    format = "text" # grpc_status= for calls answered trailers-only (refused before any message)
  }

  balancer {
    upstream = upstream.demo
  }
}
