# A canary release: v2 of a service takes 5% of the traffic, each client stays on the version it
# was given (a "canary" cookie), "x-canary: 1" always reaches v2, and a copy of 10% of the
# requests goes to a shadow for comparison. See README.md; run.sh serves it.
server {
  listen = "127.0.0.1:8080"
}

admin {
  listen = "127.0.0.1:9901"
}

upstream "v1" {
  target {
    address = "127.0.0.1:9101"
  }
  health_check {
    path = "/healthz"
  }
}

upstream "v2" {
  target {
    address = "127.0.0.1:9102"
  }
  health_check {
    path = "/healthz"
  }
  # The canary is new: a bad build must not take a queue of requests with it.
  circuit_breaker {
    max_requests = 64
  }
}

upstream "shadow" {
  target {
    address = "127.0.0.1:9103"
  }
}

pipeline "app" {
  match {
    path_prefix = "/"
  }
  balancer {
    split {
      upstream = upstream.v1
      weight   = 95
    }
    split {
      upstream = upstream.v2
      weight   = 5 # 0 rolls back (sticky clients included); 100 with v1 at 0 completes the release
    }
    sticky {
      cookie = "canary"
    }
    route_header {
      name     = "x-canary"
      value    = "1"
      upstream = upstream.v2
    }
    mirror {
      upstream = upstream.shadow
      percent  = 10
    }
  }
}
