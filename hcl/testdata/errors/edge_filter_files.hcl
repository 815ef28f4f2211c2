upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "files" {
  filter "cors" {
    allow_origins = ["https://app.example.com"]
  }
  filter "ip_filter" {
    allow     = ["10.0.0.0/8"]
    deny_file = "no-such-prefix-file.txt" # ERROR: Cannot build filter "ip_filter"
  }
  filter "key_auth" {
    header    = "X-API-Key"
    keys_file = "no-such-keys-file.txt" # ERROR: Cannot build filter "key_auth"
  }
  balancer { upstream = upstream.u }
}
