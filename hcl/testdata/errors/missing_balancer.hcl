upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" { # ERROR: Missing balancer block
  match { path_prefix = "/" }
}
