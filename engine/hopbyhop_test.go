package engine

import (
	"testing"
)

// TestCleanAllocs: cleaning a request with a Connection header, a spoofable header and an
// underscore spelling allocates nothing once the Ctx's scratch memory has grown.
func TestCleanAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	s := testServer(t)
	g := s.Gateway()
	g.headers = newHeaderPolicy(&ServerConfig{RequestID: "X-Request-Id"}, []string{"X-User-Id"})
	fc := newRequestCtx("GET", "/v1/items")
	c := AcquireCtx(fc)
	defer ReleaseCtx(c)
	allocs := testing.AllocsPerRun(1000, func() {
		h := &fc.Request.Header
		h.Set("Connection", "keep-alive, X-Hop, X-Request-Id")
		h.Set("X-Hop", "1")
		h.Set("X-Request-Id", "r1")
		h.Set("X-Real-IP", "10.0.0.1")
		h.Set("X_Forwarded_For", "10.0.0.1")
		h.Set("X_User_Id", "admin")
		if st := s.clean(g, c, c.Peer); st != 0 {
			t.Fatalf("status %d", st)
		}
	})
	if allocs != 0 {
		t.Errorf("cleaning a request allocates %v times, want 0", allocs)
	}
	h := &fc.Request.Header
	for _, n := range []string{"X-Hop", "X-Real-IP", "X_Forwarded_For", "X_User_Id"} {
		if len(h.Peek(n)) != 0 {
			t.Errorf("%s kept", n)
		}
	}
	if string(h.Peek("X-Request-Id")) != "r1" {
		t.Errorf("the request-id header named in Connection was removed")
	}
}

func TestEqualFoldDash(t *testing.T) {
	for _, tt := range []struct {
		k, n string
		want bool
	}{
		{"X_Forwarded_For", "x-forwarded-for", true},
		{"x_forwarded-FOR", "x-forwarded-for", true},
		{"X-Forwarded-For", "x-forwarded-for", true},
		{"X_Forwarded_Fo", "x-forwarded-for", false},
		{"X.Forwarded.For", "x-forwarded-for", false},
	} {
		if got := equalFoldDash([]byte(tt.k), tt.n); got != tt.want {
			t.Errorf("equalFoldDash(%q, %q) = %v", tt.k, tt.n, got)
		}
	}
}

// BenchmarkClean is the cost of cleaning a typical browser-like request's headers (nothing to
// remove, Connection: keep-alive).
func BenchmarkClean(b *testing.B) {
	s := testServer(b)
	g := s.Gateway()
	fc := newRequestCtx("GET", "/v1/items")
	h := &fc.Request.Header
	for _, kv := range [][2]string{{"User-Agent", "Mozilla/5.0"}, {"Accept", "text/html"}, {"Accept-Language", "en"},
		{"Accept-Encoding", "gzip, br"}, {"Cookie", "a=b"}, {"Connection", "keep-alive"}, {"Referer", "https://x/"}} {
		h.Set(kv[0], kv[1])
	}
	c := AcquireCtx(fc)
	defer ReleaseCtx(c)
	b.ReportAllocs()
	for b.Loop() {
		if s.clean(g, c, c.Peer) != 0 {
			b.Fatal("refused")
		}
	}
}
