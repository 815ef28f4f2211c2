package balancer_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// TestStickyCookieOnTheWire pins the Set-Cookie fields a client receives from a sticky split,
// byte for byte, over HTTP/1.1 (read off the socket) and HTTP/2 (h2c): the sticky cookie with
// its attributes in their order and spelling (Path, Max-Age, HttpOnly, SameSite), after the
// upstream's own Set-Cookie fields, which pass unchanged; none when the client's cookie names an
// upstream; and a headers filter's response phase sees the sticky cookie as any other field.
func TestStickyCookieOnTheWire(t *testing.T) {
	named := func(name string) string {
		return gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
			if string(c.Path()) == "/own" {
				c.Response.Header.Add("Set-Cookie", "session=abc; Path=/; Secure")
				c.Response.Header.Add("Set-Cookie", "canary=upstream-says")
			}
			c.Response.Header.Set("X-Upstream", name)
		})
	}
	v1, v2 := named("v1"), named("v2")
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server { protocols = ["http1", "h2c"] }
upstream "v1" {
  target {
    address = %q
  }
}
upstream "v2" {
  target {
    address = %q
  }
}
pipeline "stripped" {
  match {
    path_prefix = "/stripped"
  }
  filter "headers" {
    response_remove = ["Set-Cookie"]
  }
  balancer {
    split {
      upstream = upstream.v1
      weight   = 1
    }
    split {
      upstream = upstream.v2
      weight   = 1
    }
    sticky {
      cookie = "canary"
    }
  }
}
pipeline "app" {
  match {
    path_prefix = "/"
  }
  balancer {
    split {
      upstream = upstream.v1
      weight   = 1
    }
    split {
      upstream = upstream.v2
      weight   = 1
    }
    sticky {
      cookie  = "canary"
      max_age = "90m"
    }
  }
}
`, v1, v2))
	want := func(up string) string {
		return "canary=" + up + "; Path=/; Max-Age=5400; HttpOnly; SameSite=Lax"
	}

	// HTTP/1.1, read off the socket: the exact field lines, in order.
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	raw := func(path, cookie string) (up string, setCookies []string) {
		req := "GET " + path + " HTTP/1.1\r\nHost: gw\r\n"
		if cookie != "" {
			req += "Cookie: " + cookie + "\r\n"
		}
		if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
			t.Fatal(err)
		}
		tp := textproto.NewReader(br)
		status, err := tp.ReadLine()
		if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200 ") {
			t.Fatalf("GET %s: status line %q, %v", path, status, err)
		}
		length := 0
		for {
			line, err := tp.ReadLine()
			if err != nil {
				t.Fatal(err)
			}
			if line == "" {
				break
			}
			name, value, _ := strings.Cut(line, ": ")
			switch name {
			case "Set-Cookie":
				setCookies = append(setCookies, value)
			case "X-Upstream":
				up = value
			case "Content-Length":
				_, _ = fmt.Sscan(value, &length)
			}
		}
		if _, err := io.CopyN(io.Discard, br, int64(length)); err != nil {
			t.Fatal(err)
		}
		return up, setCookies
	}
	for range 10 {
		up, got := raw("/x", "")
		if w := []string{want(up)}; !slices.Equal(got, w) {
			t.Fatalf("HTTP/1.1, no cookie: answered by %q with Set-Cookie %q, want %q", up, got, w)
		}
		up, got = raw("/own", "")
		if w := []string{"session=abc; Path=/; Secure", "canary=upstream-says", want(up)}; !slices.Equal(got, w) {
			t.Fatalf("HTTP/1.1, the upstream's cookies: answered by %q with Set-Cookie %q, want %q", up, got, w)
		}
		if up, got = raw("/x", "canary=v2"); up != "v2" || len(got) != 0 {
			t.Fatalf("HTTP/1.1, canary=v2: answered by %q with Set-Cookie %q, want v2 and none", up, got)
		}
		if _, got = raw("/stripped", ""); len(got) != 0 {
			t.Fatalf("HTTP/1.1, response_remove: Set-Cookie %q, want none", got)
		}
	}

	// HTTP/2 (h2c): the same field values.
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Protocols: &h2c}}
	defer client.CloseIdleConnections()
	for range 10 {
		resp, err := client.Get(gw.URL + "/own")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		up := resp.Header.Get("X-Upstream")
		if resp.ProtoMajor != 2 {
			t.Fatalf("%s, want HTTP/2", resp.Proto)
		}
		if got, w := resp.Header.Values("Set-Cookie"), []string{"session=abc; Path=/; Secure", "canary=upstream-says", want(up)}; !slices.Equal(got, w) {
			t.Fatalf("HTTP/2: answered by %q with Set-Cookie %q, want %q", up, got, w)
		}
	}
}
