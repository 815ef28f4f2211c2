package cache

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/valyala/fasthttp"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newCache(t testing.TB, mod func(*Config)) (*Filter, *clock) {
	t.Helper()
	var cfg Config
	cfg.SetDefaults()
	cfg.StatusHeader = true
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f := New(&cfg, "test")
	clk := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	f.now = clk.now
	t.Cleanup(func() { f.Close() })
	return f, clk
}

// origin is an upstream for enginetest: it counts requests and answers with its current
// status, headers and body (the body carries the hit number).
type origin struct {
	hits    atomic.Int64
	mu      sync.Mutex
	status  int
	headers []string
	body    string
	etag    string   // when set, a matching If-None-Match gets 304 (max-age=100)
	cc304   string   // the 304's Cache-Control instead of max-age=100
	seen    []string // the If-None-Match of every request
}

func newOrigin(headers ...string) *origin {
	return &origin{status: 200, headers: append([]string{"Content-Type", "text/plain"}, headers...), body: "body"}
}

func (o *origin) set(status int, headers ...string) {
	o.mu.Lock()
	o.status = status
	o.headers = append([]string{"Content-Type", "text/plain"}, headers...)
	o.mu.Unlock()
}

func (o *origin) serve(c *engine.Ctx) {
	n := o.hits.Add(1)
	o.mu.Lock()
	status, headers, body, etag := o.status, o.headers, o.body, o.etag
	o.seen = append(o.seen, string(c.Request.Header.Peek("If-None-Match")))
	o.mu.Unlock()
	if etag != "" && string(c.Request.Header.Peek("If-None-Match")) == etag {
		c.Response.SetStatusCode(304)
		c.Response.Header.Set("ETag", etag)
		cc := "max-age=100"
		if o.cc304 != "" {
			cc = o.cc304
		}
		c.Response.Header.Set("Cache-Control", cc)
		c.Response.Header.Set("X-Refreshed", "yes")
		return
	}
	c.Response.Header.SetNoDefaultContentType(true)
	c.Response.SetStatusCode(status)
	for i := 0; i+1 < len(headers); i += 2 {
		c.Response.Header.Add(headers[i], headers[i+1])
	}
	c.Response.SetBodyString(fmt.Sprintf("%s #%d", body, n))
}

type reply struct {
	status int
	xcache string
	age    string
	body   string
	resp   *fasthttp.Response
}

func do(t *testing.T, f *Filter, o *origin, method, uri string, headers ...string) reply {
	t.Helper()
	c := enginetest.NewCtx(t, method, uri, headers...)
	enginetest.Serve(c, o.serve, f)
	var r fasthttp.Response
	c.Response.CopyTo(&r)
	return reply{
		status: c.Response.StatusCode(),
		xcache: string(c.Response.Header.Peek("X-Cache")),
		age:    string(c.Response.Header.Peek("Age")),
		body:   string(c.Response.Body()),
		resp:   &r,
	}
}

func expect(t *testing.T, r reply, xcache, body string) {
	t.Helper()
	if r.xcache != xcache || r.body != body {
		t.Fatalf("X-Cache %q body %q; want %q %q", r.xcache, r.body, xcache, body)
	}
}

func TestFreshness(t *testing.T) {
	f, clk := newCache(t, nil)
	o := newOrigin("Cache-Control", "max-age=60", "ETag", `"e1"`)
	expect(t, do(t, f, o, "GET", "/a"), "MISS", "body #1")
	r := do(t, f, o, "GET", "/a")
	expect(t, r, "HIT", "body #1")
	if r.age != "0" {
		t.Errorf("Age = %q, want 0", r.age)
	}
	if got := string(r.resp.Header.Peek("ETag")); got != `"e1"` {
		t.Errorf("stored ETag = %q", got)
	}
	clk.advance(30 * time.Second)
	if r := do(t, f, o, "GET", "/a"); r.xcache != "HIT" || r.age != "30" {
		t.Errorf("after 30s: X-Cache %q Age %q", r.xcache, r.age)
	}
	clk.advance(31 * time.Second)
	expect(t, do(t, f, o, "GET", "/a"), "MISS", "body #2")
	expect(t, do(t, f, o, "GET", "/a"), "HIT", "body #2")
	// Another URL, another query string: other entries.
	expect(t, do(t, f, o, "GET", "/a?x=1"), "MISS", "body #3")
	expect(t, do(t, f, o, "GET", "/b"), "MISS", "body #4")
	if o.hits.Load() != 4 {
		t.Errorf("upstream hits %d, want 4", o.hits.Load())
	}
}

func TestLifetimeSources(t *testing.T) {
	date := "Thu, 01 Jan 2026 12:00:00 GMT"
	tests := []struct {
		name    string
		mod     func(*Config)
		headers []string
		fresh   time.Duration // still a hit just before this, a miss after
	}{
		{"max-age", nil, []string{"Cache-Control", "max-age=10"}, 10 * time.Second},
		{"s-maxage beats max-age", nil, []string{"Cache-Control", "max-age=10, s-maxage=20"}, 20 * time.Second},
		{"Expires minus Date", nil, []string{"Date", date, "Expires", "Thu, 01 Jan 2026 12:00:15 GMT"}, 15 * time.Second},
		{"max-age beats Expires", nil, []string{"Cache-Control", "max-age=5", "Expires", "Thu, 01 Jan 2026 13:00:00 GMT"}, 5 * time.Second},
		{"Age header counts", nil, []string{"Cache-Control", "max-age=10", "Age", "4"}, 6 * time.Second},
		{"default_ttl without freshness", func(c *Config) { c.DefaultTTL = engine.Duration(7 * time.Second) }, nil, 7 * time.Second},
		{"public alone uses default_ttl", func(c *Config) { c.DefaultTTL = engine.Duration(3 * time.Second) }, []string{"Cache-Control", "public"}, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, clk := newCache(t, tt.mod)
			o := newOrigin(tt.headers...)
			do(t, f, o, "GET", "/x")
			clk.advance(tt.fresh - time.Second)
			if r := do(t, f, o, "GET", "/x"); r.xcache != "HIT" {
				t.Fatalf("1s before the end of freshness: %s", r.xcache)
			}
			clk.advance(2 * time.Second)
			if r := do(t, f, o, "GET", "/x"); r.xcache != "MISS" {
				t.Fatalf("1s after: %s", r.xcache)
			}
		})
	}
}

func TestNotStored(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		req     []string
		headers []string
	}{
		{"no freshness, no default_ttl", 200, nil, nil},
		{"no-store", 200, nil, []string{"Cache-Control", "max-age=60, no-store"}},
		{"private", 200, nil, []string{"Cache-Control", "private, max-age=60"}},
		{"private with fields", 200, nil, []string{"Cache-Control", `private="X-User", max-age=60`}},
		{"no-cache", 200, nil, []string{"Cache-Control", "no-cache, max-age=60"}},
		{"max-age=0", 200, nil, []string{"Cache-Control", "max-age=0"}},
		{"malformed max-age", 200, nil, []string{"Cache-Control", "max-age=soon"}},
		{"Expires in the past", 200, nil, []string{"Date", "Thu, 01 Jan 2026 12:00:00 GMT", "Expires", "Thu, 01 Jan 2026 11:00:00 GMT"}},
		{"invalid Expires", 200, nil, []string{"Expires", "0"}},
		{"Vary *", 200, nil, []string{"Cache-Control", "max-age=60", "Vary", "*"}},
		{"Set-Cookie", 200, nil, []string{"Cache-Control", "max-age=60", "Set-Cookie", "session=abc"}},
		{"authorized, max-age only", 200, []string{"Authorization", "Bearer x"}, []string{"Cache-Control", "max-age=60"}},
		{"500", 500, nil, []string{"Cache-Control", "max-age=60"}},
		{"302 without freshness", 302, nil, []string{"Location", "/y"}},
		{"206", 206, nil, []string{"Cache-Control", "max-age=60", "Content-Range", "bytes 0-1/10"}},
		{"request no-store", 200, []string{"Cache-Control", "no-store"}, []string{"Cache-Control", "max-age=60"}},
		{"request with Range", 200, []string{"Range", "bytes=0-1"}, []string{"Cache-Control", "max-age=60"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := newCache(t, func(c *Config) { c.DefaultTTL = 0 })
			o := newOrigin(tt.headers...)
			o.set(tt.status, tt.headers...)
			r1 := do(t, f, o, "GET", "/p", tt.req...)
			r2 := do(t, f, o, "GET", "/p", tt.req...)
			if r2.xcache == "HIT" || o.hits.Load() != 2 {
				t.Fatalf("stored: second request %s, upstream hits %d (first %s)", r2.xcache, o.hits.Load(), r1.xcache)
			}
			if n, _ := f.Stats(); n != 0 {
				t.Errorf("%d entries stored", n)
			}
		})
	}
}

func TestAuthorizedPublic(t *testing.T) {
	for _, cc := range []string{"public, max-age=60", "s-maxage=60", "max-age=60, must-revalidate"} {
		t.Run(cc, func(t *testing.T) {
			f, _ := newCache(t, nil)
			o := newOrigin("Cache-Control", cc)
			do(t, f, o, "GET", "/p", "Authorization", "Bearer a")
			expect(t, do(t, f, o, "GET", "/p", "Authorization", "Bearer a"), "HIT", "body #1")
		})
	}
}

func TestVary(t *testing.T) {
	f, _ := newCache(t, nil)
	o := newOrigin("Cache-Control", "max-age=60", "Vary", "Accept-Language")
	expect(t, do(t, f, o, "GET", "/v", "Accept-Language", "en"), "MISS", "body #1")
	expect(t, do(t, f, o, "GET", "/v", "Accept-Language", "fr"), "MISS", "body #2")
	expect(t, do(t, f, o, "GET", "/v"), "MISS", "body #3")
	expect(t, do(t, f, o, "GET", "/v", "Accept-Language", "en"), "HIT", "body #1")
	expect(t, do(t, f, o, "GET", "/v", "Accept-Language", "fr"), "HIT", "body #2")
	expect(t, do(t, f, o, "GET", "/v"), "HIT", "body #3")
	if n, _ := f.Stats(); n != 3 {
		t.Errorf("%d variants, want 3", n)
	}
	// A refreshed variant replaces its old copy rather than adding one.
	expect(t, do(t, f, o, "GET", "/v", "Accept-Language", "en", "Cache-Control", "no-cache"), "MISS", "body #4")
	expect(t, do(t, f, o, "GET", "/v", "Accept-Language", "en"), "HIT", "body #4")
	if n, _ := f.Stats(); n != 3 {
		t.Errorf("%d variants after refresh, want 3", n)
	}
}

func TestEviction(t *testing.T) {
	f, _ := newCache(t, func(c *Config) { c.MaxBytes = 64 << 10; c.MaxEntryBytes = 16 << 10 })
	o := newOrigin("Cache-Control", "max-age=600")
	o.body = strings.Repeat("x", 10<<10)
	for i := range 5 {
		do(t, f, o, "GET", fmt.Sprintf("/e%d", i))
	}
	// Use /e0 so /e1 becomes the least recently used, then add more than fits.
	if r := do(t, f, o, "GET", "/e0"); r.xcache != "HIT" {
		t.Fatal("/e0 not cached")
	}
	for i := 5; i < 8; i++ {
		do(t, f, o, "GET", fmt.Sprintf("/e%d", i))
	}
	n, b := f.Stats()
	if b > 64<<10 {
		t.Errorf("store holds %d bytes, over max_bytes", b)
	}
	if n != 6 {
		t.Errorf("%d entries, want 6 (10KiB each plus overhead in 64KiB)", n)
	}
	hits := o.hits.Load()
	if r := do(t, f, o, "GET", "/e0"); r.xcache != "HIT" {
		t.Error("recently used /e0 was evicted")
	}
	for _, u := range []string{"/e1", "/e2"} {
		if r := do(t, f, o, "GET", u); r.xcache != "MISS" {
			t.Errorf("%s survived eviction", u)
		}
	}
	if o.hits.Load() != hits+2 {
		t.Errorf("upstream hits %d, want %d", o.hits.Load(), hits+2)
	}
	// Too large for one entry: passed through, not stored.
	o.body = strings.Repeat("y", 20<<10)
	do(t, f, o, "GET", "/big")
	if r := do(t, f, o, "GET", "/big"); r.xcache != "MISS" {
		t.Error("entry over max_entry_bytes stored")
	}
}

func TestCoalescing(t *testing.T) {
	f, _ := newCache(t, nil)
	const n = 100
	var hits atomic.Int64
	release := make(chan struct{})
	term := func(c *engine.Ctx) {
		hits.Add(1)
		<-release
		c.Response.SetStatusCode(200)
		c.Response.Header.Set("Cache-Control", "max-age=60")
		c.Response.SetBodyString("shared")
	}
	var wg sync.WaitGroup
	results := make([]string, n)
	bodies := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := enginetest.NewCtx(t, "GET", "/hot")
			enginetest.Serve(c, term, f)
			results[i] = string(c.Response.Header.Peek("X-Cache"))
			bodies[i] = string(c.Response.Body())
		}()
	}
	// Readiness: the other 99 are all waiting for the first one's fetch.
	deadline := time.Now().Add(10 * time.Second)
	for f.Waiting() < n-1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if f.Waiting() != n-1 {
		t.Fatalf("%d requests waiting, want %d", f.Waiting(), n-1)
	}
	close(release)
	wg.Wait()
	if hits.Load() != 1 {
		t.Fatalf("upstream reached %d times, want once", hits.Load())
	}
	var miss, hit int
	for i := range n {
		if bodies[i] != "shared" {
			t.Fatalf("request %d got %q", i, bodies[i])
		}
		switch results[i] {
		case "MISS":
			miss++
		case "HIT":
			hit++
		}
	}
	if miss != 1 || hit != n-1 {
		t.Errorf("%d MISS, %d HIT", miss, hit)
	}
}

// TestCoalescingUncacheable: when the fetched response cannot be stored, the waiters go to
// the upstream themselves rather than failing.
func TestCoalescingUncacheable(t *testing.T) {
	f, _ := newCache(t, nil)
	var hits atomic.Int64
	release := make(chan struct{})
	term := func(c *engine.Ctx) {
		if hits.Add(1) == 1 {
			<-release
		}
		c.Response.SetStatusCode(200)
		c.Response.Header.Set("Cache-Control", "private")
		c.Response.SetBodyString("mine")
	}
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := enginetest.NewCtx(t, "GET", "/priv")
			enginetest.Serve(c, term, f)
			if string(c.Response.Body()) != "mine" {
				t.Errorf("body %q", c.Response.Body())
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.Waiting() < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if hits.Load() != 5 {
		t.Errorf("upstream hits %d, want 5", hits.Load())
	}
}

// TestCoalescingBounded: a waiter gives up after coalesce_timeout and fetches itself.
func TestCoalescingBounded(t *testing.T) {
	f, _ := newCache(t, func(c *Config) { c.CoalesceTimeout = engine.Duration(50 * time.Millisecond) })
	var hits atomic.Int64
	stuck := make(chan struct{})
	first := make(chan struct{})
	done := make(chan struct{})
	defer func() { close(stuck); <-done }()
	term := func(c *engine.Ctx) {
		if hits.Add(1) == 1 {
			close(first)
			<-stuck
		}
		c.Response.SetStatusCode(200)
		c.Response.SetBodyString("late")
	}
	go func() {
		defer close(done)
		c := enginetest.NewCtx(t, "GET", "/slow")
		enginetest.Serve(c, term, f)
	}()
	<-first
	start := time.Now()
	c := enginetest.NewCtx(t, "GET", "/slow")
	enginetest.Serve(c, term, f)
	if string(c.Response.Body()) != "late" || hits.Load() != 2 {
		t.Fatalf("body %q hits %d", c.Response.Body(), hits.Load())
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Errorf("waited %v, want about coalesce_timeout", d)
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	f, clk := newCache(t, nil)
	o := newOrigin("Cache-Control", "max-age=10, stale-while-revalidate=30")
	expect(t, do(t, f, o, "GET", "/s"), "MISS", "body #1")
	clk.advance(15 * time.Second)
	r := do(t, f, o, "GET", "/s")
	expect(t, r, "STALE", "body #1")
	if r.age != "15" {
		t.Errorf("Age %q", r.age)
	}
	f.bg.Wait() // the background refresh
	if o.hits.Load() != 2 {
		t.Fatalf("upstream hits %d after revalidation, want 2", o.hits.Load())
	}
	expect(t, do(t, f, o, "GET", "/s"), "HIT", "body #2")
	// Past the window: a plain miss.
	clk.advance(50 * time.Second)
	expect(t, do(t, f, o, "GET", "/s"), "MISS", "body #3")
	// must-revalidate forbids serving stale.
	o.set(200, "Cache-Control", "max-age=10, stale-while-revalidate=30, must-revalidate")
	do(t, f, o, "GET", "/m")
	clk.advance(15 * time.Second)
	if r := do(t, f, o, "GET", "/m"); r.xcache != "MISS" {
		t.Errorf("must-revalidate entry served %s", r.xcache)
	}
}

func TestRequestDirectives(t *testing.T) {
	f, clk := newCache(t, nil)
	o := newOrigin("Cache-Control", "max-age=60")
	if r := do(t, f, o, "GET", "/r", "Cache-Control", "only-if-cached"); r.status != 504 {
		t.Errorf("only-if-cached miss: %d", r.status)
	}
	do(t, f, o, "GET", "/r")
	expect(t, do(t, f, o, "GET", "/r", "Cache-Control", "only-if-cached"), "HIT", "body #1")
	// no-cache and max-age=0 go to the upstream and refresh the entry.
	expect(t, do(t, f, o, "GET", "/r", "Cache-Control", "no-cache"), "MISS", "body #2")
	expect(t, do(t, f, o, "GET", "/r", "Pragma", "no-cache"), "MISS", "body #3")
	expect(t, do(t, f, o, "GET", "/r", "Cache-Control", "max-age=0"), "MISS", "body #4")
	expect(t, do(t, f, o, "GET", "/r"), "HIT", "body #4")
	clk.advance(20 * time.Second)
	expect(t, do(t, f, o, "GET", "/r", "Cache-Control", "max-age=10"), "MISS", "body #5")
	expect(t, do(t, f, o, "GET", "/r", "Cache-Control", "max-age=10"), "HIT", "body #5")
	// no-store neither reads nor writes.
	expect(t, do(t, f, o, "GET", "/r", "Cache-Control", "no-store"), "MISS", "body #6")
	expect(t, do(t, f, o, "GET", "/r"), "HIT", "body #5")
}

func TestConditional(t *testing.T) {
	f, _ := newCache(t, nil)
	o := newOrigin("Cache-Control", "max-age=60", "ETag", `"v7"`, "Last-Modified", "Thu, 01 Jan 2026 10:00:00 GMT")
	do(t, f, o, "GET", "/c")
	for _, tc := range []struct {
		hdr    []string
		status int
	}{
		{[]string{"If-None-Match", `"v7"`}, 304},
		{[]string{"If-None-Match", `W/"v7"`}, 304}, // what a client of compress sends back
		{[]string{"If-None-Match", `"v1", "v7"`}, 304},
		{[]string{"If-None-Match", `*`}, 304},
		{[]string{"If-None-Match", `"v8"`}, 200},
		{[]string{"If-Modified-Since", "Thu, 01 Jan 2026 11:00:00 GMT"}, 304},
		{[]string{"If-Modified-Since", "Thu, 01 Jan 2026 09:00:00 GMT"}, 200},
		{[]string{"If-None-Match", `"v8"`, "If-Modified-Since", "Thu, 01 Jan 2026 11:00:00 GMT"}, 200},
	} {
		r := do(t, f, o, "GET", "/c", tc.hdr...)
		if r.status != tc.status || r.xcache != "HIT" {
			t.Errorf("%v: %d %s, want %d HIT", tc.hdr, r.status, r.xcache, tc.status)
		}
		if tc.status == 304 && (len(r.resp.Body()) != 0 || string(r.resp.Header.Peek("ETag")) != `"v7"`) {
			t.Errorf("%v: 304 with body %q, ETag %q", tc.hdr, r.resp.Body(), r.resp.Header.Peek("ETag"))
		}
	}
	if o.hits.Load() != 1 {
		t.Errorf("upstream hits %d", o.hits.Load())
	}
}

func TestHeadAndUnsafe(t *testing.T) {
	f, _ := newCache(t, nil)
	o := newOrigin("Cache-Control", "max-age=60")
	// A HEAD miss goes through and is not stored.
	do(t, f, o, "HEAD", "/h")
	expect(t, do(t, f, o, "GET", "/h"), "MISS", "body #2")
	r := do(t, f, o, "HEAD", "/h")
	if r.xcache != "HIT" || r.resp.Header.ContentLength() != len("body #2") && len(r.resp.Body()) != len("body #2") {
		t.Errorf("HEAD from the GET entry: %s, length %d", r.xcache, r.resp.Header.ContentLength())
	}
	// A failed POST keeps the entry; a successful one drops it.
	o.set(500)
	if r := do(t, f, o, "POST", "/h"); r.xcache != "" {
		t.Errorf("POST got X-Cache %q", r.xcache)
	}
	o.set(200, "Cache-Control", "max-age=60")
	expect(t, do(t, f, o, "GET", "/h"), "HIT", "body #2")
	do(t, f, o, "POST", "/h")
	expect(t, do(t, f, o, "GET", "/h"), "MISS", "body #5")
}

func TestHitAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	f, _ := newCache(t, nil)
	o := newOrigin("Cache-Control", "max-age=600", "ETag", `"a"`, "Vary", "Accept-Encoding")
	o.body = strings.Repeat("z", 4<<10)
	do(t, f, o, "GET", "/hot", "Accept-Encoding", "gzip")
	c := enginetest.NewCtx(t, "GET", "/hot", "Accept-Encoding", "gzip")
	run := func() {
		c.Response.Reset()
		if f.OnRequest(c) != engine.Respond {
			t.Fatal("not a hit")
		}
		f.OnResponse(c)
	}
	run()
	if n := testing.AllocsPerRun(500, run); n != 0 {
		t.Errorf("a cache hit allocates %v times", n)
	}
	if !bytes.HasPrefix(c.Response.Body(), []byte("zzz")) {
		t.Error("wrong body")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		mod   func(*Config)
		field string
	}{
		{func(c *Config) { c.MaxBytes = 10 }, "max_bytes"},
		{func(c *Config) { c.DefaultTTL = -1 }, "default_ttl"},
		{func(c *Config) { c.MaxEntryBytes = c.MaxBytes + 1 }, "max_entry_bytes"},
		{func(c *Config) { c.CoalesceTimeout = 0 }, "coalesce_timeout"},
	} {
		var c Config
		c.SetDefaults()
		tc.mod(&c)
		errs := engine.FieldErrors(c.Validate())
		if len(errs) != 1 {
			t.Errorf("errors %v, want one on %s", errs, tc.field)
			continue
		}
		if fe, ok := engine.AsFieldError(errs[0]); !ok || fe.Field != tc.field {
			t.Errorf("error %v not on %s", errs[0], tc.field)
		}
	}
}

func BenchmarkHit(b *testing.B) {
	f, _ := newCache(b, nil)
	o := newOrigin("Cache-Control", "max-age=600")
	o.body = strings.Repeat("z", 16<<10)
	c0 := enginetest.NewCtx(b, "GET", "/hot")
	enginetest.Serve(c0, o.serve, f)
	c := enginetest.NewCtx(b, "GET", "/hot")
	b.ReportAllocs()
	for b.Loop() {
		c.Response.Reset()
		f.OnRequest(c)
		f.OnResponse(c)
	}
}

func TestConditionalRevalidation(t *testing.T) {
	f, clk := newCache(t, nil)
	o := newOrigin("Cache-Control", "max-age=10", "ETag", `"v1"`, "X-Refreshed", "no")
	o.etag = `"v1"`
	expect(t, do(t, f, o, "GET", "/cr"), "MISS", "body #1")
	clk.advance(15 * time.Second)
	r := do(t, f, o, "GET", "/cr")
	if r.status != 200 || r.xcache != "REVALIDATED" || r.body != "body #1" {
		t.Fatalf("stale with validators: %d %s %q", r.status, r.xcache, r.body)
	}
	if o.seen[1] != `"v1"` {
		t.Errorf("upstream got If-None-Match %q", o.seen[1])
	}
	if got := string(r.resp.Header.Peek("X-Refreshed")); got != "yes" {
		t.Errorf("304 headers not merged: X-Refreshed %q", got)
	}
	// The 304 said max-age=100: fresh again, stored body kept.
	clk.advance(50 * time.Second)
	expect(t, do(t, f, o, "GET", "/cr"), "HIT", "body #1")
	if o.hits.Load() != 2 {
		t.Errorf("upstream hits %d, want 2", o.hits.Load())
	}
	// A client's own conditional request passes through untouched.
	clk.advance(100 * time.Second)
	r = do(t, f, o, "GET", "/cr", "If-None-Match", `"v1"`)
	if r.status != 304 || r.xcache != "MISS" {
		t.Errorf("client conditional: %d %s", r.status, r.xcache)
	}
}

func TestStaleIfError(t *testing.T) {
	f, clk := newCache(t, nil)
	o := newOrigin("Cache-Control", "max-age=10, stale-if-error=60")
	expect(t, do(t, f, o, "GET", "/se"), "MISS", "body #1")
	clk.advance(15 * time.Second)
	o.set(503)
	r := do(t, f, o, "GET", "/se")
	if r.status != 200 || r.xcache != "STALE" || r.body != "body #1" || r.age != "15" {
		t.Fatalf("upstream 503 within stale-if-error: %d %s %q age %s", r.status, r.xcache, r.body, r.age)
	}
	clk.advance(60 * time.Second)
	if r := do(t, f, o, "GET", "/se"); r.status != 503 {
		t.Errorf("past the window: %d, want the 503", r.status)
	}
}

func TestBackgroundRevalidation304(t *testing.T) {
	f, clk := newCache(t, nil)
	o := newOrigin("Cache-Control", "max-age=10, stale-while-revalidate=30", "ETag", `"v1"`)
	o.etag = `"v1"`
	do(t, f, o, "GET", "/b3")
	clk.advance(15 * time.Second)
	expect(t, do(t, f, o, "GET", "/b3"), "STALE", "body #1")
	f.bg.Wait()
	if o.hits.Load() != 2 || o.seen[1] != `"v1"` {
		t.Fatalf("background refresh: hits %d, If-None-Match %q", o.hits.Load(), o.seen)
	}
	expect(t, do(t, f, o, "GET", "/b3"), "HIT", "body #1")
}

func TestNoCacheRevalidatedEachTime(t *testing.T) {
	f, _ := newCache(t, nil)
	o := newOrigin("Cache-Control", "no-cache", "ETag", `"n1"`)
	o.etag, o.cc304 = `"n1"`, "no-cache"
	expect(t, do(t, f, o, "GET", "/nc"), "MISS", "body #1")
	for i := 0; i < 2; i++ {
		r := do(t, f, o, "GET", "/nc")
		if r.xcache != "REVALIDATED" || r.body != "body #1" {
			t.Fatalf("no-cache entry: %s %q", r.xcache, r.body)
		}
	}
	if o.hits.Load() != 3 {
		t.Errorf("upstream hits %d, want 3 (one per request)", o.hits.Load())
	}
}
