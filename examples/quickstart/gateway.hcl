# The quickstart: what `make run` serves. Two demo upstreams (testbed echo servers on 9001 and
# 9002) behind one gateway on 127.0.0.1:8080, admin API on 127.0.0.1:9901.

server {
  listen     = "127.0.0.1:8080"
  request_id = "X-Request-Id"
}

admin {
  listen = "127.0.0.1:9901"
}

upstream "demo" {
  policy = "round_robin"
  target {
    address = "127.0.0.1:9001"
  }
  target {
    address = "127.0.0.1:9002"
  }
}

pipeline "api" {
  match {
    path_prefix = "/api/"
  }
  strip_prefix = "/api"

  filter "headers" {
    request_set  = { "X-Gateway" = "sluice" }
    response_add = { "X-Served-By" = "sluice" }
  }

  balancer {
    upstream = upstream.demo
  }
}

pipeline "public" {
  match {
    path_prefix = "/"
  }
  balancer {
    upstream = upstream.demo
  }
}
