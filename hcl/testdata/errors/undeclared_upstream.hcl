upstream "catalog" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  balancer {
    upstream = upstream.catalgo # ERROR: Reference to undeclared upstream
  }
}
