# Every core block and attribute, with values other than the defaults.
server {
  listen             = "127.0.0.1:8443"
  read_timeout       = "10s"
  write_timeout      = "10s"
  idle_timeout       = "1m"
  max_header_bytes   = "32KiB"
  max_body_bytes     = "1MiB"
  max_connections    = 500
  max_conns_per_ip   = 50
  trusted_proxies    = ["10.0.0.0/8", "192.168.0.1"]
  request_id         = "X-Request-Id"
  max_response_bytes = "16MiB"
}

admin {
  listen = "127.0.0.1:9902"
  token  = env("SLUICE_TEST_ADMIN_TOKEN", "")
}

telemetry {
  service_name = "edge"
  traces {
    exporter        = "none"
    sample_ratio    = 0.5
    response_header = "X-Trace-Id"
  }
}

redis "main" {
  address = "127.0.0.1:6379"
  db      = 2
  timeout = "20ms"
}

upstream "a" {
  policy = "round_robin"
  target {
    address = "127.0.0.1:9001"
  }
  target {
    address = "127.0.0.1:9002"
    weight  = 2
  }
}

upstream "b" {
  policy  = "ring_hash"
  hash_on = "header:X-User"
  target {
    address = "127.0.0.1:9003"
  }
}

pipeline "api" {
  match {
    hosts       = ["api.example.com", "*.example.org"]
    path_prefix = "/v1/"
    methods     = ["GET", "POST"]
  }
  strip_prefix = "/v1"

  filter "headers" {
    request_set     = { "X-Gateway" = "sluice", "X-Config" = jsonencode({ v = 1 }) }
    request_remove  = ["X-Debug"]
    response_add    = { "X-Served-By" = "sluice" }
    response_remove = ["Server"]
  }

  balancer {
    upstream = upstream.a
  }
}

pipeline "rest" {
  balancer {
    upstream = upstream.b
  }
}
