# External authorization (forward_auth): every request to /api/ is first put to an authorization
# service (testbed/authdemo, run by run.sh on 127.0.0.1:9100). Its 2xx answer lets the request
# through with the user and role it named; its 401 or 403 goes back to the client as it is.
server {
  listen = "127.0.0.1:8080"
}

admin {
  listen = "127.0.0.1:9901"
}

upstream "app" {
  target {
    address = "127.0.0.1:9101"
  }
}

pipeline "api" {
  match {
    path_prefix = "/api/"
  }
  filter "forward_auth" {
    url              = "http://127.0.0.1:9100/check"
    timeout          = "1s"
    request_headers  = ["Authorization"]
    upstream_headers = ["X-Auth-User", "X-Auth-Role"] # a client's own copies are removed
    consumer_header  = "X-Auth-User"
    # The service decides on the method too (only admins write), so decisions are not cached
    # here; a service deciding on the token alone could use:
    #   cache_ttl = "30s"
    #   cache_key = ["Authorization"]
  }
  # Each user gets 5 requests per second, however many addresses they come from.
  filter "rate_limit" {
    key    = "header:X-Auth-User"
    limit  = 5
    period = "1s"
  }
  balancer {
    upstream = upstream.app
  }
}

pipeline "health" {
  match {
    path_prefix = "/healthz"
  }
  filter "respond" {
    body = "ok\n"
  }
}
