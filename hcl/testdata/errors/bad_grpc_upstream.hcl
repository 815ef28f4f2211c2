upstream "u" {
  target { address = "127.0.0.1:9001" }
  health_check {
    type = "grpcs" # ERROR: Invalid value
  }
  retry {
    grpc_on = ["unavailable", "not_found"] # ERROR: Invalid value
  }
}
upstream "v" {
  target { address = "127.0.0.1:9002" }
  health_check {
    service = "shop.Cart" # ERROR: Invalid value
  }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
pipeline "q" {
  match { path_prefix = "/q/" }
  balancer { upstream = upstream.v }
}
