pipeline "p" { # ERROR: Missing balancer block
  filter "respond" {
    body = "never last"
  }
  filter "headers" {
    request_set = { "X-A" = "1" }
  }
}
