# HTTPS at the edge, runnable locally: see README.md. ./make-certs.sh makes the test CA and
# certificates in certs/; ./run.sh makes them, starts a demo upstream on 127.0.0.1:9001 and serves.

server {
  request_id = "X-Request-Id"
  # Upstreams get the verified client certificate of api.localhost's clients (mutual TLS).
  forward_client_cert = "sanitize_set"
}

admin {
  listen = "127.0.0.1:9901"
}

# Cleartext: every request is redirected to the HTTPS listener (308), except ACME challenges.
listener "web" {
  address           = "127.0.0.1:8080"
  redirect_to_https = true
}

# HTTPS with three certificates chosen by SNI; HTTP/2 by ALPN.
listener "public" {
  address   = "127.0.0.1:8443"
  protocols = ["http1", "h2"]
  tls {
    certificate { # the default: clients sending no or an unknown server name get it
      cert_file = "certs/localhost.pem"
      key_file  = "certs/localhost-key.pem"
    }
    certificate {
      cert_file = "certs/api.pem"
      key_file  = "certs/api-key.pem"
      # Mutual TLS for api.localhost: clients need a certificate from the test CA
      # (certs/client.pem). A request for api.localhost on another name's connection: 421.
      client_auth {
        mode    = "require"
        ca_file = "certs/ca.pem"
      }
    }
    certificate {
      cert_file = "certs/apps.pem" # *.apps.localhost
      key_file  = "certs/apps-key.pem"
    }
    min_version             = "1.2"
    session_ticket_key_file = "certs/tickets.key"
  }
}

# An internal port (cleartext HTTP/1.1 and h2c) with its own per-address limit.
listener "internal" {
  address          = "127.0.0.1:8081"
  protocols        = ["http1", "h2c"]
  max_conns_per_ip = 16
}

upstream "demo" {
  target {
    address = "127.0.0.1:9001"
  }
}

# Reachable only through the internal listener.
pipeline "ops" {
  match {
    path_prefix = "/ops/"
    listeners   = ["internal"]
  }
  balancer {
    upstream = upstream.demo
  }
}

pipeline "site" {
  match {
    hosts = ["localhost", "127.0.0.1", "api.localhost", "*.apps.localhost"]
  }
  balancer {
    upstream = upstream.demo
  }
}
