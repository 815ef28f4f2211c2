upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  filter "cors" {
    allow_origins     = ["https://app.*.com"] # ERROR: Invalid value
    allow_credentials = true
  }
  filter "ip_filter" {
    allow = ["10.0.0.1/8"] # ERROR: Invalid value
  }
  filter "key_auth" {
    key {
      consumer = "acme"
      key_hash = "not-a-hash" # ERROR: Invalid value
    }
  }
  balancer { upstream = upstream.u }
}
