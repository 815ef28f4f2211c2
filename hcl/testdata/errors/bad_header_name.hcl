upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  filter "headers" {
    request_set = { "Bad Name" = "x" } # ERROR: Invalid value
  }
  balancer { upstream = upstream.u }
}
