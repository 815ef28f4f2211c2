package engine_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// seenRequest is what the upstream received.
type seenRequest struct{ method, uri, cl, te, body, x string }

type recordingUpstream struct {
	mu   sync.Mutex
	seen []seenRequest
}

func (u *recordingUpstream) handle(c *fasthttp.RequestCtx) {
	u.mu.Lock()
	u.seen = append(u.seen, seenRequest{
		method: string(c.Method()), uri: string(c.Request.Header.RequestURI()),
		cl: string(c.Request.Header.Peek("Content-Length")), te: string(c.Request.Header.Peek("Transfer-Encoding")),
		body: string(c.Request.Body()), x: string(c.Request.Header.Peek("X")),
	})
	u.mu.Unlock()
	c.SetBodyString("ok")
}

func (u *recordingUpstream) take() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.seen
	u.seen = nil
	return s
}

// statusLines sends raw bytes on a new connection and returns every response's status code, read
// until the gateway closes the connection or goes quiet.
func statusLines(t *testing.T, addr, raw string) []string {
	t.Helper()
	var codes []string
	for _, r := range rawExchange(t, addr, raw) {
		codes = append(codes, r.status)
	}
	return codes
}

// TestSmugglingAndMalformedRequests sends raw byte requests and checks the status the client gets
// and exactly what the upstream received: never two requests where the client sent one, never a
// request with ambiguous framing.
func TestSmugglingAndMalformedRequests(t *testing.T) {
	up := &recordingUpstream{}
	addr := gatewaytest.Upstream(t, up.handle)
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  read_timeout = "1s"
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, addr))

	const host = "Host: x\r\n"
	tests := []struct {
		name   string
		raw    string
		status []string      // responses the client reads
		seen   []seenRequest // what the upstream received (compared on the fields set)
	}{
		{"CL and TE", "POST / HTTP/1.1\r\n" + host + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + host + "\r\n", []string{"400"}, nil},
		{"TE and CL", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n", []string{"400"}, nil},
		{"TE identity and CL", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello", []string{"400"}, nil},
		{"two different CL", "POST / HTTP/1.1\r\n" + host + "Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", []string{"400"}, nil},
		{"obfuscated TE xchunked", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", []string{"501"}, nil},
		{"TE chunked, identity", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n", []string{"501"}, nil},
		{"TE with space before colon", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", []string{"400"}, nil},
		{"TE gzip, chunked with CL", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", []string{"501"}, nil},
		{"duplicate TE", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", []string{"501"}, nil},
		{"bad chunk size", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", []string{"400"}, nil},
		{"negative CL", "POST / HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n", []string{"400"}, nil},
		{"CL with underscore", "POST / HTTP/1.1\r\n" + host + "Content-Length: 1_0\r\n\r\n", []string{"400"}, nil},
		{"header line starting with space", "GET / HTTP/1.1\r\n" + host + " folded: y\r\n\r\n", []string{"400"}, nil},
		{"duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", []string{"400"}, nil},
		{"HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", []string{"400"}, nil},
		{"NUL in a header", "GET / HTTP/1.1\r\nHost: x\x00y\r\n\r\n", []string{"400"}, nil},
		{"space in the URI", "GET /a b HTTP/1.1\r\n" + host + "\r\n", []string{"400"}, nil},
		{"chunked body re-framed", "POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
			[]string{"200"}, []seenRequest{{method: "POST", uri: "/c", cl: "11", te: "", body: "hello world"}}},
		{"CL with spaces", "POST /s HTTP/1.1\r\n" + host + "Content-Length:  5 \r\n\r\nhello",
			[]string{"200"}, []seenRequest{{method: "POST", uri: "/s", cl: "5", body: "hello"}}},
		{"obs-fold joined", "GET /f HTTP/1.1\r\n" + host + "X: a\r\n  continued\r\n\r\n",
			[]string{"200"}, []seenRequest{{method: "GET", uri: "/f", x: "a continued"}}},
		{"pipelined requests", "GET /a HTTP/1.1\r\n" + host + "\r\nGET /b HTTP/1.1\r\n" + host + "\r\n",
			[]string{"200", "200"}, []seenRequest{{method: "GET", uri: "/a"}, {method: "GET", uri: "/b"}}},
		{"HTTP/1.0 without Host", "GET /old HTTP/1.0\r\n\r\n",
			[]string{"200"}, []seenRequest{{method: "GET", uri: "/old"}}},
		{"absolute-form target", "GET http://elsewhere.example/abs?q=1 HTTP/1.1\r\n" + host + "\r\n",
			[]string{"200"}, []seenRequest{{method: "GET", uri: "/abs?q=1"}}},
		{"body shorter than CL", "POST / HTTP/1.1\r\n" + host + "Content-Length: 10\r\n\r\nhel", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up.take()
			got := statusLines(t, gw.Addr, tt.raw)
			if strings.Join(got, ",") != strings.Join(tt.status, ",") {
				t.Errorf("client got statuses %v, want %v", got, tt.status)
			}
			seen := up.take()
			if len(seen) != len(tt.seen) {
				t.Fatalf("upstream received %d requests %+v, want %d", len(seen), seen, len(tt.seen))
			}
			for i, want := range tt.seen {
				s := seen[i]
				if s.method != want.method || s.uri != want.uri || (want.body != "" && s.body != want.body) ||
					(want.cl != "" && s.cl != want.cl) || s.te != want.te || (want.x != "" && s.x != want.x) {
					t.Errorf("upstream request %d = %+v, want %+v", i, s, want)
				}
			}
		})
	}
}
