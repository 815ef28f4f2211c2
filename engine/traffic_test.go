package engine

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// countingUpstream counts the requests it serves.
type countingUpstream struct{ n int }

func (u *countingUpstream) Serve(c *Ctx) { u.n++ }

func trafficCtx(t testing.TB, headers ...string) (*Ctx, func()) {
	fc := new(fasthttp.RequestCtx)
	var req fasthttp.Request
	req.Header.SetMethod("GET")
	req.SetRequestURI("/x")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	fc.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	c := AcquireCtx(fc)
	c.Start = time.Now()
	return c, func() { ReleaseCtx(c) }
}

func canary(t testing.TB, sticky *StickySpec) (*chooser, *countingUpstream, *countingUpstream, *countingUpstream) {
	v1, v2, beta := &countingUpstream{}, &countingUpstream{}, &countingUpstream{}
	b := &BalancerSpec{
		Split:       []SplitSpec{{Upstream: "v1", Weight: 95}, {Upstream: "v2", Weight: 5}},
		Sticky:      sticky,
		RouteHeader: []RouteOnValue{{Name: "X-Canary", Value: "1", Upstream: "v2"}},
		RouteCookie: []RouteOnValue{{Name: "beta", Upstream: "beta"}},
	}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	ch, err := newChooser("test", "v1", b, map[string]Upstream{"v1": v1, "v2": v2, "beta": beta})
	if err != nil {
		t.Fatal(err)
	}
	return ch, v1, v2, beta
}

func TestChooserSplitAndRoutes(t *testing.T) {
	ch, v1, v2, beta := canary(t, &StickySpec{Cookie: "canary", MaxAge: Duration(time.Hour)})
	const n = 20000
	for range n {
		c, done := trafficCtx(t)
		ch.Serve(c)
		if sc := string(c.Response.Header.Peek("Set-Cookie")); !strings.HasPrefix(sc, "canary=v") || !strings.Contains(sc, "Max-Age=3600") {
			t.Fatalf("Set-Cookie %q: want the sticky cookie", sc)
		}
		done()
	}
	if share := float64(v2.n) / n; share < 0.04 || share > 0.06 {
		t.Errorf("v2 got %.3f of the requests, want about 0.05", share)
	}
	v1.n, v2.n = 0, 0
	for _, tc := range []struct {
		headers []string
		want    *countingUpstream
		cookie  bool
	}{
		{[]string{"X-Canary", "1"}, v2, false},
		{[]string{"X-Canary", "0", "Cookie", "canary=v1"}, v1, false},
		{[]string{"Cookie", "canary=v2"}, v2, false},
		{[]string{"Cookie", "beta=yes; canary=v1"}, beta, false},
		{[]string{"Cookie", "canary=nope"}, nil, true},
	} {
		c, done := trafficCtx(t, tc.headers...)
		before := [3]int{v1.n, v2.n, beta.n}
		ch.Serve(c)
		if tc.want != nil && tc.want.n != 1+before[map[*countingUpstream]int{v1: 0, v2: 1, beta: 2}[tc.want]] {
			t.Errorf("%v: not served by the expected upstream", tc.headers)
		}
		if got := c.Response.Header.Peek("Set-Cookie") != nil; got != tc.cookie {
			t.Errorf("%v: Set-Cookie sent %v, want %v", tc.headers, got, tc.cookie)
		}
		done()
	}
}

func TestChooserStickyHeader(t *testing.T) {
	ch, v1, v2, _ := canary(t, &StickySpec{Header: "X-User", MaxAge: Duration(time.Hour)})
	for _, user := range []string{"alice", "bob", "carol", "dave"} {
		v1.n, v2.n = 0, 0
		for range 50 {
			c, done := trafficCtx(t, "X-User", user)
			ch.Serve(c)
			done()
		}
		if v1.n != 50 && v2.n != 50 {
			t.Errorf("user %s went to v1 %d and v2 %d times: want one upstream", user, v1.n, v2.n)
		}
	}
}

func TestChooserAllocs(t *testing.T) {
	ch, _, _, _ := canary(t, &StickySpec{Cookie: "canary", MaxAge: Duration(time.Hour)})
	for _, h := range [][]string{nil, {"X-Canary", "1"}, {"Cookie", "canary=v1"}, {"Cookie", "canary=v2"}} {
		c, done := trafficCtx(t, h...)
		ch.Serve(c) // warm the header buffers
		if n := testing.AllocsPerRun(200, func() {
			c.Response.Header.Del("Set-Cookie")
			ch.Serve(c)
		}); n != 0 {
			t.Errorf("%v: %v allocations per choice, want 0", h, n)
		}
		done()
	}
}

func BenchmarkChooser(b *testing.B) {
	ch, _, _, _ := canary(b, &StickySpec{Cookie: "canary", MaxAge: Duration(time.Hour)})
	b.Run("cookie", func(b *testing.B) {
		c, done := trafficCtx(b, "Cookie", "canary=v1", "Accept", "*/*", "User-Agent", "bench")
		defer done()
		b.ReportAllocs()
		for b.Loop() {
			ch.Serve(c)
		}
	})
	// The benchmark's split row: no cookie and no route header, so each request is drawn and
	// answered with a Set-Cookie (removed again here, as the next request's response starts empty).
	b.Run("fresh", func(b *testing.B) {
		c, done := trafficCtx(b, "Accept", "*/*", "User-Agent", "bench")
		defer done()
		b.ReportAllocs()
		for b.Loop() {
			c.Response.Header.DelAllCookies()
			ch.Serve(c)
		}
	})
}

func TestBalancerSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		b    BalancerSpec
		want string
	}{
		{BalancerSpec{}, "upstream"},
		{BalancerSpec{Upstream: "a", Split: []SplitSpec{{Upstream: "b", Weight: 1}}}, "split"},
		{BalancerSpec{Split: []SplitSpec{{Upstream: "a", Weight: 0}}}, "split"},
		{BalancerSpec{Split: []SplitSpec{{Upstream: "a", Weight: 10001}, {Upstream: "b", Weight: 1}}}, "split[0].weight"},
		{BalancerSpec{Split: []SplitSpec{{Upstream: "a", Weight: 1}, {Upstream: "a", Weight: 1}}}, "split[1].upstream"},
		{BalancerSpec{Upstream: "a", Sticky: &StickySpec{Cookie: "c", MaxAge: 1}}, "sticky"},
		{BalancerSpec{Split: []SplitSpec{{Upstream: "a", Weight: 1}}, Sticky: &StickySpec{Cookie: "c", Header: "h", MaxAge: 1}}, "sticky"},
		{BalancerSpec{Split: []SplitSpec{{Upstream: "a", Weight: 1}}, Sticky: &StickySpec{Cookie: "a b", MaxAge: 1}}, "sticky.cookie"},
		{BalancerSpec{Upstream: "a", RouteHeader: []RouteOnValue{{Name: "x:y", Upstream: "b"}}}, "route_header[0].name"},
		{BalancerSpec{Upstream: "a", Timeouts: &BalancerTimeouts{Request: -1}}, "timeouts.request"},
		{BalancerSpec{Upstream: "a", Retry: &BalancerRetry{Attempts: new(6)}}, "retry.attempts"},
		{BalancerSpec{Upstream: "a", Retry: &BalancerRetry{PerTryTimeout: -1}}, "retry.per_try_timeout"},
	} {
		errs := FieldErrors(tc.b.Validate())
		if len(errs) != 1 {
			t.Errorf("%+v: %v, want one error on %s", tc.b, errs, tc.want)
			continue
		}
		if fe, ok := AsFieldError(errs[0]); !ok || fe.Field != tc.want {
			t.Errorf("%+v: %v, want an error on %s", tc.b, errs[0], tc.want)
		}
	}
}

// TestMirrorOfferAllocs: taking the copy of a request for the mirror allocates nothing once the
// job's buffers have grown (the mirror's own exchange runs on its worker).
func TestMirrorOfferAllocs(t *testing.T) {
	m := newMirror("test", &MirrorSpec{Upstream: "m", Percent: 100, MaxBodyBytes: 1024, MaxConcurrent: 1}, &countingUpstream{})
	defer m.close()
	c, done := trafficCtx(t, "Content-Type", "text/plain")
	defer done()
	c.Request.SetBodyString("hello")
	for range 3 {
		m.offer(c) // warm the job's buffers
		time.Sleep(10 * time.Millisecond)
	}
	if n := testing.AllocsPerRun(100, func() { m.offer(c) }); n != 0 {
		t.Errorf("%v allocations per offer, want 0", n)
	}
}

// TestChooserUpstreamName: a request the split sends to the pipeline's own upstream leaves the
// Ctx naming none (UpstreamName reports the pipeline's), one sent to another arm or by a route
// names it.
func TestChooserUpstreamName(t *testing.T) {
	ch, v1, v2, _ := canary(t, &StickySpec{Cookie: "canary", MaxAge: Duration(time.Hour)})
	p := &Pipeline{Name: "test", Upstream: "v1"}
	for _, tc := range []struct {
		headers []string
		want    string
		named   bool
	}{
		{[]string{"Cookie", "canary=v1"}, "v1", false},
		{[]string{"Cookie", "canary=v2"}, "v2", true},
		{[]string{"X-Canary", "1"}, "v2", true},
		{[]string{"Cookie", "beta=1"}, "beta", true},
	} {
		c, done := trafficCtx(t, tc.headers...)
		c.Pipeline = p
		ch.Serve(c)
		if got := c.UpstreamName(); got != tc.want {
			t.Errorf("%v: UpstreamName %q, want %q", tc.headers, got, tc.want)
		}
		if got := c.upstream != ""; got != tc.named {
			t.Errorf("%v: the Ctx names the upstream: %v, want %v", tc.headers, got, tc.named)
		}
		done()
	}
	// Fresh clients: whichever arm the draw gives, UpstreamName is the one that served.
	for range 400 {
		c, done := trafficCtx(t)
		c.Pipeline = p
		n1, n2 := v1.n, v2.n
		ch.Serve(c)
		if want := map[bool]string{true: "v1", false: "v2"}[v1.n > n1]; c.UpstreamName() != want || v1.n+v2.n != n1+n2+1 {
			t.Fatalf("UpstreamName %q, want %q", c.UpstreamName(), want)
		}
		done()
	}
}

// TestCtxDraw: the split's generator is uniform (each of 16 buckets of the high bits within 5%
// of its share over 160,000 draws), seeded apart for each Ctx, and allocates nothing.
func TestCtxDraw(t *testing.T) {
	var c Ctx
	var buckets [16]int
	const n = 160000
	for range n {
		buckets[c.draw()>>60]++
	}
	for i, b := range buckets {
		if b < n/16*95/100 || b > n/16*105/100 {
			t.Errorf("bucket %d: %d of %d draws, want about %d", i, b, n, n/16)
		}
	}
	// The low bits too (the split uses the whole word through a multiplication).
	var odd int
	for range n {
		odd += int(c.draw() & 1)
	}
	if odd < n/2*98/100 || odd > n/2*102/100 {
		t.Errorf("%d odd draws of %d", odd, n)
	}
	var a, b Ctx
	if a.draw() == b.draw() {
		t.Error("two fresh Ctxs drew the same first number: not seeded apart")
	}
	if allocs := testing.AllocsPerRun(100, func() { c.rng = 0; c.draw() }); allocs != 0 {
		t.Errorf("%v allocations per draw (seeding included), want 0", allocs)
	}
}
