package engine_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// hostUpstream records the request-target, Host, protocol and Authorization lines of what it
// receives.
type hostUpstream struct {
	mu   sync.Mutex
	seen []string
}

func (u *hostUpstream) handle(c *fasthttp.RequestCtx) {
	h := &c.Request.Header
	auth := 0
	for k := range h.All() {
		if strings.EqualFold(string(k), "Authorization") {
			auth++
		}
	}
	u.mu.Lock()
	u.seen = append(u.seen, fmt.Sprintf("%s %s %s host=%s auth=%d", h.Method(), h.RequestURI(), h.Protocol(), h.Host(), auth))
	u.mu.Unlock()
	c.SetBodyString("open")
}

func (u *hostUpstream) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.seen
	u.seen = nil
	return s
}

// rawResponse is what the client read: the status and the headers a test looks at.
type rawResponse struct{ status, location, allow string }

// rawExchange sends raw bytes on a new connection and reads every response until the gateway
// closes the connection or goes quiet.
func rawExchange(t *testing.T, addr, raw string) []rawResponse {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	var got []rawResponse
	r := bufio.NewReader(conn)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
		resp := fasthttp.AcquireResponse()
		// A HEAD-less exchange: every response here has a body framed by Content-Length.
		if err := resp.Read(r); err != nil {
			fasthttp.ReleaseResponse(resp)
			return got
		}
		got = append(got, rawResponse{fmt.Sprint(resp.StatusCode()), string(resp.Header.Peek("Location")), string(resp.Header.Peek("Allow"))})
		closing := resp.ConnectionClose()
		fasthttp.ReleaseResponse(resp)
		if closing {
			return got
		}
	}
}

// routingGateway starts a gateway whose open pipeline forwards to up, in front of two protected
// pipelines (a path prefix and a host) that want a token (401 without).
func routingGateway(t *testing.T, up *hostUpstream, slashes string) *gatewaytest.Gateway {
	addr := gatewaytest.Upstream(t, up.handle)
	return gatewaytest.Start(t, fmt.Sprintf(`
server {
  read_timeout    = "1s"
  escaped_slashes = %q
}
upstream "u" {
  target { address = %q }
}
pipeline "admin" {
  match { path_prefix = "/admin/" }
  filter "jwt" { hmac_secret = "0123456789abcdef0123456789abcdef" }
  balancer { upstream = upstream.u }
}
pipeline "internal" {
  match { hosts = ["internal.example"] }
  filter "jwt" { hmac_secret = "0123456789abcdef0123456789abcdef" }
  balancer { upstream = upstream.u }
}
pipeline "open" {
  balancer { upstream = upstream.u }
}
`, slashes, addr))
}

type admissionCase struct {
	name string
	raw  string
	want []rawResponse // what the client reads (location and allow compared when set)
	seen []string      // what the upstream received
}

func runAdmissionCases(t *testing.T, addr string, up *hostUpstream, tests []admissionCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up.take()
			got := rawExchange(t, addr, tt.raw)
			if len(got) != len(tt.want) {
				t.Fatalf("client got %+v, want %+v", got, tt.want)
			}
			for i, w := range tt.want {
				g := got[i]
				if g.status != w.status || (w.location != "" && g.location != w.location) || (w.allow != "" && g.allow != w.allow) {
					t.Errorf("response %d = %+v, want %+v", i, g, w)
				}
			}
			if seen := up.take(); strings.Join(seen, "\n") != strings.Join(tt.seen, "\n") {
				t.Errorf("upstream received\n  %q\nwant\n  %q", seen, tt.seen)
			}
		})
	}
}

func status(codes ...string) []rawResponse {
	r := make([]rawResponse, len(codes))
	for i, c := range codes {
		r[i].status = c
	}
	return r
}

// TestAdmission sends raw requests that main routed to the open pipeline, or forwarded as they
// came, while the upstream would act on something else: each must now be refused, or reach the
// upstream in the form the gateway routed on.
func TestAdmission(t *testing.T) {
	up := &hostUpstream{}
	gw := routingGateway(t, up, "reject")
	const allow = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
	runAdmissionCases(t, gw.Addr, up, []admissionCase{
		// Item 10: either framing header as the first header line.
		{"CL first, then TE", "POST / HTTP/1.1\r\nContent-Length: 4\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", status("400"), nil},
		{"TE first, then CL", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: x\r\nContent-Length: 30\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", status("400"), nil},
		// Item 7: a field name is a token.
		{"space in a name", "GET / HTTP/1.1\r\nHost: x\r\nX Foo: bar\r\n\r\n", status("400"), nil},
		{"Content Length", "POST / HTTP/1.1\r\nHost: x\r\nContent Length: 10\r\nContent-Length: 0\r\n\r\n", status("400"), nil},
		{"space in the first name", "GET / HTTP/1.1\r\nX Foo: bar\r\nHost: x\r\n\r\n", status("400"), nil},
		{"quote in a name", "GET / HTTP/1.1\r\nHost: x\r\nX\"Foo: bar\r\n\r\n", status("400"), nil},
		// Item 8.
		{"two Authorization", "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nauthorization: Bearer b\r\n\r\n", status("400"), nil},
		{"one Authorization", "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\n\r\n", status("200"), []string{"GET / HTTP/1.1 host=x auth=1"}},
		// Item 1, the default: escaped slashes and backslashes are refused.
		{"%2F in a segment", "GET /admin%2Fsecret HTTP/1.1\r\nHost: x\r\n\r\n", status("400"), nil},
		{"%2F first", "GET /%2Fadmin/secret HTTP/1.1\r\nHost: x\r\n\r\n", status("400"), nil},
		{"..%2F", "GET /x/..%2Fadmin/secret HTTP/1.1\r\nHost: x\r\n\r\n", status("400"), nil},
		{"%2f lower-case", "GET /admin%2fsecret HTTP/1.1\r\nHost: x\r\n\r\n", status("400"), nil},
		{"%5C", "GET /admin%5Csecret HTTP/1.1\r\nHost: x\r\n\r\n", status("400"), nil},
		{"%5c lower-case", "GET /x/..%5cadmin/secret HTTP/1.1\r\nHost: x\r\n\r\n", status("400"), nil},
		{"backslash", "GET /admin\\secret HTTP/1.1\r\nHost: x\r\n\r\n", status("400"), nil},
		{"..; (a dot segment with a parameter)", "GET /pub/..;/admin/secret HTTP/1.1\r\nHost: x\r\n\r\n", status("400"), nil},
		{"..;param", "GET /pub/..;jsessionid=1/admin HTTP/1.1\r\nHost: x\r\n\r\n", status("400"), nil},
		{".; and %2e%2e;", "GET /pub/.;/%2e%2E;/admin HTTP/1.1\r\nHost: x\r\n\r\n", status("400"), nil},
		{"a ; elsewhere is fine", "GET /pub/a;b/..x;y HTTP/1.1\r\nHost: x\r\n\r\n", status("200"), []string{"GET /pub/a;b/..x;y HTTP/1.1 host=x auth=0"}},
		{"%2F in the query is fine", "GET /pub?next=%2Fadmin HTTP/1.1\r\nHost: x\r\n\r\n", status("200"), []string{"GET /pub?next=%2Fadmin HTTP/1.1 host=x auth=0"}},
		{"%252F is not a slash", "GET /pub%252Fx HTTP/1.1\r\nHost: x\r\n\r\n", status("200"), []string{"GET /pub%252Fx HTTP/1.1 host=x auth=0"}},
		// Item 2: the host is canonical before routing, and forwarded so.
		{"trailing dot", "GET / HTTP/1.1\r\nHost: internal.example.\r\n\r\n", status("401"), nil},
		{"trailing dot and port", "GET / HTTP/1.1\r\nHost: internal.example.:80\r\n\r\n", status("401"), nil},
		{"upper case", "GET / HTTP/1.1\r\nHost: INTERNAL.Example\r\n\r\n", status("401"), nil},
		{"userinfo", "GET / HTTP/1.1\r\nHost: x@internal.example\r\n\r\n", status("400"), nil},
		{"comma", "GET / HTTP/1.1\r\nHost: internal.example,open.example\r\n\r\n", status("400"), nil},
		{"non-ASCII", "GET / HTTP/1.1\r\nHost: internal.ex\xc3\xa4mple\r\n\r\n", status("400"), nil},
		{"empty label", "GET / HTTP/1.1\r\nHost: internal..example\r\n\r\n", status("400"), nil},
		{"two trailing dots", "GET / HTTP/1.1\r\nHost: internal.example..\r\n\r\n", status("400"), nil},
		{"bad port", "GET / HTTP/1.1\r\nHost: open.example:8o\r\n\r\n", status("400"), nil},
		{"port too large", "GET / HTTP/1.1\r\nHost: open.example:65536\r\n\r\n", status("400"), nil},
		{"canonical form forwarded", "GET / HTTP/1.1\r\nHost: Open.Example.:8080\r\n\r\n", status("200"), []string{"GET / HTTP/1.1 host=open.example:8080 auth=0"}},
		{"IPv6 literal", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", status("200"), []string{"GET / HTTP/1.1 host=[::1]:8080 auth=0"}},
		{"IPv6 zone", "GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", status("400"), nil},
		{"IPv4 literal", "GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n", status("200"), []string{"GET / HTTP/1.1 host=127.0.0.1:80 auth=0"}},
		// A keep-alive connection remembers its last canonical Host (hostmemo.go): other values
		// on the same connection, longer, shorter or differently spelt, are still checked.
		{"one connection, several hosts", "GET / HTTP/1.1\r\nHost: open.example\r\n\r\nGET / HTTP/1.1\r\nHost: Open.Example.\r\n\r\n" +
			"GET / HTTP/1.1\r\nHost: open.example\r\n\r\nGET / HTTP/1.1\r\nHost: INTERNAL.example\r\n\r\nGET / HTTP/1.1\r\nHost: open.example:65536\r\n\r\n",
			status("200", "200", "200", "401", "400"), []string{"GET / HTTP/1.1 host=open.example auth=0", "GET / HTTP/1.1 host=open.example auth=0", "GET / HTTP/1.1 host=open.example auth=0"}},
		// Absolute-form: the target's authority is the host (RFC 9112 §3.2.2).
		{"absolute-form routes by its authority", "GET http://internal.example/x HTTP/1.1\r\nHost: open.example\r\n\r\n", status("401"), nil},
		{"absolute-form forwarded in origin-form", "GET http://Open.Example./p?q=1 HTTP/1.1\r\nHost: internal.example\r\n\r\n", status("200"), []string{"GET /p?q=1 HTTP/1.1 host=open.example auth=0"}},
		{"absolute-form without a path", "GET http://open.example?q HTTP/1.1\r\nHost: internal.example\r\n\r\n", status("200"), []string{"GET /?q HTTP/1.1 host=open.example auth=0"}},
		{"absolute-form with userinfo", "GET http://u:p@internal.example/ HTTP/1.1\r\nHost: open.example\r\n\r\n", status("400"), nil},
		{"absolute-form, empty authority", "GET http:///x HTTP/1.1\r\nHost: open.example\r\n\r\n", status("400"), nil},
		{"absolute-form, other scheme", "GET ftp://open.example/x HTTP/1.1\r\nHost: open.example\r\n\r\n", status("400"), nil},
		// Item 3.
		{"CONNECT", "CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n\r\n", []rawResponse{{status: "405", allow: allow}}, nil},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: open.example\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
			[]rawResponse{{status: "200", allow: allow}, {status: "200"}}, []string{"GET / HTTP/1.1 host=x auth=0"}},
		// Item 4.
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", status("505"), nil},
		{"HTTP/3.0", "GET / HTTP/3.0\r\nHost: x\r\n\r\n", status("505"), nil},
		{"HTTP/0.9", "GET / HTTP/0.9\r\nHost: x\r\n\r\n", status("505"), nil},
		{"HTTP/1.2 is HTTP/1.1", "GET / HTTP/1.2\r\nHost: x\r\n\r\nGET /again HTTP/1.2\r\nHost: x\r\n\r\n", status("200", "200"),
			[]string{"GET / HTTP/1.1 host=x auth=0", "GET /again HTTP/1.1 host=x auth=0"}},
		{"HTTP/1.2 with Connection: close", "GET / HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\nGET /again HTTP/1.2\r\nHost: x\r\n\r\n", status("200"),
			[]string{"GET / HTTP/1.1 host=x auth=0"}},
		{"HTTP/1.0 goes upstream as HTTP/1.1", "GET /old HTTP/1.0\r\nHost: x\r\n\r\n", status("200"), []string{"GET /old HTTP/1.1 host=x auth=0"}},
	})
}

// TestEscapedSlashModes runs the same requests through each escaped_slashes mode.
func TestEscapedSlashModes(t *testing.T) {
	get := func(target string) string { return "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n" }
	modes := []struct {
		mode  string
		cases []admissionCase
	}{
		{"reject", []admissionCase{
			{"%2F", get("/admin%2Fsecret"), status("400"), nil},
			{"backslash", get("/pub\\x"), status("400"), nil},
		}},
		{"redirect", []admissionCase{
			{"%2F", get("/admin%2Fsecret?a=%2F"), []rawResponse{{status: "307", location: "/admin/secret?a=%2F"}}, nil},
			{"%2F first", get("/%2Fadmin/secret"), []rawResponse{{status: "307", location: "/admin/secret"}}, nil},
			{"..%5C", get("/x/..%5Cadmin/secret"), []rawResponse{{status: "307", location: "/admin/secret"}}, nil},
			{"backslash", get("/pub\\x"), []rawResponse{{status: "307", location: "/pub/x"}}, nil},
			{"no open redirect", get("/%2F%2Fevil.example/x"), []rawResponse{{status: "307", location: "/evil.example/x"}}, nil},
			{"plain path", get("/pub/x"), status("200"), []string{"GET /pub/x HTTP/1.1 host=x auth=0"}},
		}},
		{"unescape", []admissionCase{
			{"%2F", get("/admin%2Fsecret"), status("401"), nil},
			{"%2F first", get("/%2Fadmin/secret"), status("401"), nil},
			{"..%2F", get("/x/..%2Fadmin/secret"), status("401"), nil},
			{"backslash", get("/admin\\secret"), status("401"), nil},
			{"forwarded unescaped", get("/pub%2Fx/./y%5Cz?a=%2F"), status("200"), []string{"GET /pub/x/y/z?a=%2F HTTP/1.1 host=x auth=0"}},
			{"plain path forwarded raw", get("/pub/%41"), status("200"), []string{"GET /pub/%41 HTTP/1.1 host=x auth=0"}},
		}},
		{"keep", []admissionCase{
			{"%2F", get("/admin%2Fsecret"), status("200"), []string{"GET /admin%2Fsecret HTTP/1.1 host=x auth=0"}},
			{"backslash", get("/pub\\x"), status("200"), []string{"GET /pub\\x HTTP/1.1 host=x auth=0"}},
		}},
	}
	for _, m := range modes {
		t.Run(m.mode, func(t *testing.T) {
			up := &hostUpstream{}
			gw := routingGateway(t, up, m.mode)
			runAdmissionCases(t, gw.Addr, up, m.cases)
		})
	}
}
