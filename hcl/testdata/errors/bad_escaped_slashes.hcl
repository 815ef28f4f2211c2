server {
  escaped_slashes = "decode" # ERROR: Invalid value
}

upstream "u" {
  target {
    address = "127.0.0.1:9000"
  }
}

pipeline "p" {
  balancer {
    upstream = upstream.u
  }
}
