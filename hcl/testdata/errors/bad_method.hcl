upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  match {
    methods = ["get"] # ERROR: Invalid value
  }
  balancer { upstream = upstream.u }
}
