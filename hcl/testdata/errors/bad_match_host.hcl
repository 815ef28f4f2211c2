upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  match {
    hosts = ["my_service.internal"] # ERROR: Invalid value
  }
  balancer { upstream = upstream.u }
}
