# A browser app on one origin calling an API on another, through one gateway with two listeners:
#   http://127.0.0.1:8081  the app's origin: a static page (app.html)
#   http://127.0.0.1:8080  the API: CORS for the app's origin, then a testbed upstream on 9101
# Run it with examples/cors/run.sh (see README.md).

listener "api" {
  address = "127.0.0.1:8080"
}

listener "app" {
  address = "127.0.0.1:8081"
}

admin {
  listen = "127.0.0.1:9901"
}

upstream "api" {
  target {
    address = "127.0.0.1:9101"
  }
}

# The app's origin: the page, and nothing else.
pipeline "app" {
  match {
    listeners   = ["app"]
    path_prefix = "/"
  }
  filter "respond" {
    body_file    = "app.html"
    content_type = "text/html; charset=utf-8"
  }
  balancer {
    upstream = upstream.api # never reached: respond answers
  }
}

pipeline "api" {
  match {
    listeners   = ["api"]
    path_prefix = "/api/"
  }
  filter "otel_log" {
    format = "text"
  }
  # Preflights from the app are answered here; anything else from another origin gets no
  # Access-Control-Allow-Origin, so the browser hides the answer from the page.
  filter "cors" {
    allow_origins     = ["http://127.0.0.1:8081", "http://localhost:8081"]
    allow_methods     = ["GET", "POST", "PUT", "DELETE"]
    allow_headers     = ["Content-Type", "X-Request-Id"]
    expose_headers    = ["X-Upstream"]
    allow_credentials = true # the page sends its cookies: the exact origin comes back, never *
    max_age           = "1m"
  }
  balancer {
    upstream = upstream.api
  }
}
