# API keys with per-consumer rate limits: each consumer (not each key, not each address) has its
# own budget, and only one consumer may delete. Run it with examples/api-keys/run.sh (README.md).

server {
  listen = "127.0.0.1:8080"
}

admin {
  listen = "127.0.0.1:9901"
}

upstream "api" {
  target {
    address = "127.0.0.1:9101"
  }
}

pipeline "api" {
  match {
    path_prefix = "/"
  }
  # First, so it also logs the 401, 403 and 429 answers; "consumer" names who called.
  filter "otel_log" {
    format          = "text"
    request_headers = ["user-agent", "x-api-key"]
    redact          = ["x-api-key"] # the key header is logged as [REDACTED], if at all
  }
  # Keys from X-API-Key (or ?api_key=), looked up by SHA-256 in keys.txt; removed before the
  # upstream sees them. Edit keys.txt and reload (kill -HUP, or run with --watch) to rotate.
  filter "key_auth" {
    header    = "X-API-Key"
    query     = "api_key"
    keys_file = "keys.txt"
  }
  filter "authorize" {
    rule {
      methods   = ["DELETE"]
      consumers = ["partner-acme"]
    }
  }
  # 5 requests a minute per consumer: mobile-app's two keys share one budget.
  filter "rate_limit" {
    key    = "consumer"
    limit  = 5
    period = "1m"
  }
  balancer {
    upstream = upstream.api
  }
}
