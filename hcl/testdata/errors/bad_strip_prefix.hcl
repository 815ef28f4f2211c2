upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  strip_prefix = "/v1/" # ERROR: Invalid value
  balancer { upstream = upstream.u }
}
