package balancer_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// h2Upstream is a net/http upstream on 127.0.0.1 speaking h2c (tlsConf nil) or TLS with h2 and
// HTTP/1.1 by ALPN. conns counts the connections it accepted.
type h2Upstream struct {
	Addr  string
	Srv   *http.Server
	conns atomic.Int32
}

func startH2Upstream(t *testing.T, h http.Handler, tlsConf *tls.Config, maxStreams int) *h2Upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &h2Upstream{Addr: ln.Addr().String()}
	var p http.Protocols
	if tlsConf == nil {
		p.SetUnencryptedHTTP2(true)
	} else {
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	}
	u.Srv = &http.Server{
		Handler:   h,
		Protocols: &p,
		TLSConfig: tlsConf,
		HTTP2:     &http.HTTP2Config{MaxConcurrentStreams: maxStreams},
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				u.conns.Add(1)
			}
		},
		ErrorLog: quietLog(),
	}
	go func() {
		if tlsConf != nil {
			_ = u.Srv.ServeTLS(ln, "", "")
		} else {
			_ = u.Srv.Serve(ln)
		}
	}()
	t.Cleanup(func() { _ = u.Srv.Close() })
	return u
}

// h2Config is a gateway config with upstream "u" speaking protocol to targets, each target
// block getting targetExtra, the upstream block upstreamExtra.
func h2Config(server, protocol string, targets []string, targetExtra, upstreamExtra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server {\n%s\n}\nupstream \"u\" {\n  protocol = %q\n", server, protocol)
	for _, t := range targets {
		fmt.Fprintf(&b, "  target {\n    address = %q\n%s\n  }\n", t, targetExtra)
	}
	b.WriteString(upstreamExtra)
	b.WriteString(`
}
pipeline "root" {
  match {
    path_prefix = "/"
  }
  balancer {
    upstream = upstream.u
  }
}
`)
	return b.String()
}

// echoH2 answers with what it received: protocol, request-target, a few headers and the body.
func echoH2(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Up-Proto", r.Proto)
	w.Header().Set("X-Up-URI", r.RequestURI)
	w.Header().Set("X-Up-Host", r.Host)
	w.Header().Set("X-Up-XFF", r.Header.Get("X-Forwarded-For"))
	w.Header().Set("X-Up-Via", r.Header.Get("Via"))
	w.Header().Set("X-Up-UA", fmt.Sprint(r.Header.Values("User-Agent")))
	w.Header().Set("X-Up-Conn-Header", r.Header.Get("X-Hop"))
	w.Header().Add("Set-Cookie", "a=1")
	w.Header().Add("Set-Cookie", "b=2")
	w.WriteHeader(201)
	_, _ = fmt.Fprintf(w, "%s %d %s", r.Method, len(body), body)
}

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// TestH2CRoundTrip: an HTTP/1.1 client's requests reach an h2c upstream as HTTP/2 with the
// raw path, forwarding headers and body; the response comes back with its status and headers.
func TestH2CRoundTrip(t *testing.T) {
	up := startH2Upstream(t, http.HandlerFunc(echoH2), nil, 0)
	gw := gatewaytest.Start(t, h2Config("", "h2c", []string{up.Addr}, "", ""))

	resp, body := rawRequest(t, gw.Addr, "GET /a%41b/c?q=1&r=%20 HTTP/1.1\r\nHost: example.test\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n")
	if resp.StatusCode != 201 || string(body) != "GET 0 " {
		t.Fatalf("%d %q, want 201 \"GET 0 \"", resp.StatusCode, body)
	}
	for k, want := range map[string]string{
		"X-Up-Proto": "HTTP/2.0", "X-Up-URI": "/a%41b/c?q=1&r=%20", "X-Up-Host": "example.test",
		"X-Up-XFF": "127.0.0.1", "X-Up-Via": "1.1 sluice", "X-Up-UA": "[]", "X-Up-Conn-Header": "",
		"Via": "1.1 sluice",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 2 {
		t.Errorf("Set-Cookie %q, want both", got)
	}

	payload := strings.Repeat("p", 100000)
	resp, body = rawRequest(t, gw.Addr, "POST /post HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n"+payload)
	if resp.StatusCode != 201 || string(body) != "POST 100000 "+payload {
		t.Fatalf("%d %.40q, want the 100000 bytes echoed", resp.StatusCode, body)
	}
	if up.conns.Load() != 1 {
		t.Errorf("%d upstream connections, want 1 for both requests", up.conns.Load())
	}
}
