package basicauth

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"golang.org/x/crypto/bcrypt"
)

// hashOf returns a cost-4 bcrypt hash of pw with the given prefix ("$2y$", "$2a$", "$2b$").
func hashOf(t testing.TB, pw, prefix string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return prefix + string(h[4:])
}

func basic(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

// newTestFilter builds a filter for alice/wonderland ($2y$) and bob/builder ($2b$) whose bcrypt
// calls are counted.
func newTestFilter(t testing.TB, mod func(*Config)) (*Filter, *atomic.Int64) {
	t.Helper()
	file := "# users\nalice:" + hashOf(t, "wonderland", "$2y$") + "\n\nbob:" + hashOf(t, "builder", "$2b$") + "\r\n"
	users, err := parseHtpasswd("users", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{HtpasswdFile: "users"}
	cfg.SetDefaults()
	cfg.UserHeader = "X-Auth-User"
	if mod != nil {
		mod(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f, err := New(cfg, users, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	calls := new(atomic.Int64)
	f.compare = func(h, pw []byte) error { calls.Add(1); return bcrypt.CompareHashAndPassword(h, pw) }
	return f, calls
}

func TestBasicAuth(t *testing.T) {
	f, calls := newTestFilter(t, nil)
	for _, tc := range []struct {
		name, auth string
		status     int
		bcrypts    int64
	}{
		{"no header", "", 401, 0},
		{"bearer", "Bearer abc", 401, 0},
		{"scheme only", "Basic", 401, 0},
		{"bad base64", "Basic !!!!", 401, 0},
		{"no colon", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice")), 401, 0},
		{"empty user", basic("", "wonderland"), 401, 0},
		{"control in user", basic("ali\nce", "wonderland"), 401, 0},
		{"too long", "Basic " + strings.Repeat("QUFB", 400), 401, 0},
		{"wrong password", basic("alice", "nope"), 401, 1},
		{"unknown user", basic("mallory", "wonderland"), 401, 1},
		{"alice", basic("alice", "wonderland"), 200, 1},
		{"alice lower-case scheme", "basic " + base64.StdEncoding.EncodeToString([]byte("alice:wonderland")), 200, 0},
		{"bob", basic("bob", "builder"), 200, 1},
		{"bob again", basic("bob", "builder"), 200, 0},
		{"bob with alice's password", basic("bob", "wonderland"), 401, 1},
		{"password with colon", basic("alice", "wonderland:x"), 401, 1},
		{"password over 72 bytes", basic("alice", strings.Repeat("w", 73)), 401, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdrs := []string{"X-Auth-User", "admin"}
			if tc.auth != "" {
				hdrs = append(hdrs, "Authorization", tc.auth)
			}
			c := enginetest.NewCtx(t, "GET", "/x", hdrs...)
			before := calls.Load()
			var upstreamAuth, upstreamUser string
			enginetest.Serve(c, func(c *engine.Ctx) {
				upstreamAuth = string(c.Request.Header.Peek("Authorization"))
				upstreamUser = string(c.Request.Header.Peek("X-Auth-User"))
				enginetest.OK(c)
			}, f)
			if got := c.Response.StatusCode(); got != tc.status {
				t.Fatalf("status %d, want %d (%v)", got, tc.status, c.Failure)
			}
			if got := calls.Load() - before; got != tc.bcrypts {
				t.Errorf("%d bcrypt calls, want %d", got, tc.bcrypts)
			}
			cons, _ := engine.ConsumerKey.Get(c)
			if tc.status == 401 {
				if ch := string(c.Response.Header.Peek("WWW-Authenticate")); ch != `Basic realm="sluice", charset="UTF-8"` {
					t.Errorf("challenge %q", ch)
				}
				if c.Flags&engine.FlagUnauthorized == 0 {
					t.Error("no FlagUnauthorized on a refusal")
				}
				if cons != nil {
					t.Errorf("consumer %+v on a refusal", cons)
				}
				return
			}
			user, _, _ := strings.Cut(tc.name, " ")
			if cons == nil || cons.ID != user || cons.Method != "basic_auth" {
				t.Errorf("consumer %+v, want %s/basic_auth", cons, user)
			}
			if upstreamAuth != "" {
				t.Errorf("the upstream got Authorization %q", upstreamAuth)
			}
			if upstreamUser != user {
				t.Errorf("the upstream got X-Auth-User %q, want %q (the client's forged one removed)", upstreamUser, user)
			}
		})
	}
}

// TestCacheSavesBcrypt counts bcrypt calls: a verified credential repeats without bcrypt until
// its TTL passes; a wrong password always costs one; with cache_ttl = 0 every request costs one.
func TestCacheSavesBcrypt(t *testing.T) {
	f, calls := newTestFilter(t, func(c *Config) { c.CacheTTL = engine.Duration(time.Minute) })
	run := func(auth string, at time.Time) int {
		c := enginetest.NewCtx(t, "GET", "/", "Authorization", auth)
		c.Start = at
		enginetest.Serve(c, enginetest.OK, f)
		return c.Response.StatusCode()
	}
	t0 := time.Now()
	for i := range 10 {
		if s := run(basic("alice", "wonderland"), t0.Add(time.Duration(i)*time.Second)); s != 200 {
			t.Fatalf("status %d", s)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("10 requests with one credential: %d bcrypt calls, want 1", n)
	}
	for range 3 {
		run(basic("alice", "wrong"), t0)
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("3 wrong passwords: %d bcrypt calls in all, want 4", n)
	}
	if s := run(basic("alice", "wonderland"), t0.Add(2*time.Minute)); s != 200 || calls.Load() != 5 {
		t.Errorf("after the TTL: status %d, %d bcrypt calls, want 200 and 5", s, calls.Load())
	}

	nc, ncCalls := newTestFilter(t, func(c *Config) { c.CacheTTL = 0 })
	for range 3 {
		c := enginetest.NewCtx(t, "GET", "/", "Authorization", basic("bob", "builder"))
		enginetest.Serve(c, enginetest.OK, nc)
	}
	if n := ncCalls.Load(); n != 3 {
		t.Errorf("cache_ttl = 0: %d bcrypt calls for 3 requests, want 3", n)
	}
}

func TestCacheBounded(t *testing.T) {
	cc := newCredCache(3, int64(time.Minute))
	k := newKeyer()
	u := &user{name: "u"}
	for i := range 10 {
		var key cacheKey
		k.key([]byte{byte(i)}, &key)
		cc.Put(&key, u, 0)
	}
	if cc.Len() != 3 {
		t.Errorf("%d entries, want at most 3", cc.Len())
	}
}

// TestCacheKey: the key is SHA-256 of the secret and the token, the same for the same token,
// and keyed: another filter (another secret) derives another, and it is not the token's plain
// SHA-256.
func TestCacheKey(t *testing.T) {
	k := newKeyer()
	token := []byte("YWxpY2U6d29uZGVybGFuZA==")
	var a, a2, b, other cacheKey
	k.key(token, &a)
	k.key(token, &a2)
	newKeyer().key(token, &b)
	k.key([]byte("YWxpY2U6d29uZGVybGFuZQ=="), &other)
	switch {
	case a != a2:
		t.Error("one token, two keys")
	case a == b:
		t.Error("two filters derived the same cache key")
	case a == other:
		t.Error("two tokens, one key")
	case a == sha256.Sum256(token):
		t.Error("the key is the token's plain SHA-256")
	}
	// A token of any length: one block (55 bytes with the padding) and beyond.
	seen := map[cacheKey]bool{}
	for n := range 200 {
		var key cacheKey
		k.key([]byte(strings.Repeat("A", n)), &key)
		if seen[key] {
			t.Fatalf("a token of %d bytes has another's key", n)
		}
		seen[key] = true
	}
}

// TestCachedByText: two texts of one credential (the padding bits differ) are two cache
// entries, each verified by bcrypt; a text verified before is not decoded again.
func TestCachedByText(t *testing.T) {
	f, calls := newTestFilter(t, nil)
	run := func(auth string) int {
		c := enginetest.NewCtx(t, "GET", "/", "Authorization", auth)
		enginetest.Serve(c, enginetest.OK, f)
		cons, _ := engine.ConsumerKey.Get(c)
		if c.Response.StatusCode() == 200 && (cons == nil || cons.ID != "bob") {
			t.Errorf("%q: consumer %+v, want bob", auth, cons)
		}
		return c.Response.StatusCode()
	}
	canonical := basic("bob", "builder") // "Basic Ym9iOmJ1aWxkZXI="
	variant := canonical[:len(canonical)-2] + "J="
	if dec, err := base64.StdEncoding.DecodeString(variant[6:]); err != nil || string(dec) != "bob:builder" {
		t.Fatalf("the variant %q decodes to %q, %v", variant, dec, err)
	}
	if s := run(canonical); s != 200 {
		t.Fatalf("status %d", s)
	}
	if s := run(variant); s != 200 || calls.Load() != 2 {
		t.Fatalf("the variant: status %d, %d bcrypt calls, want 200 and 2", s, calls.Load())
	}
	for _, auth := range []string{canonical, variant, "basic   " + canonical[6:]} {
		if s := run(auth); s != 200 {
			t.Fatalf("%q: status %d", auth, s)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d bcrypt calls, want 2 (the spaces after the scheme are not part of the text)", n)
	}
}

// TestBcryptBounded: with max_concurrent_bcrypt = 1 and one verification in progress, a request
// needing another is refused 503 at once, with Retry-After; a cached credential still passes.
func TestBcryptBounded(t *testing.T) {
	f, _ := newTestFilter(t, func(c *Config) { c.MaxConcurrentBcrypt = 1 })
	// Cache bob first.
	c := enginetest.NewCtx(t, "GET", "/", "Authorization", basic("bob", "builder"))
	enginetest.Serve(c, enginetest.OK, f)
	if c.Response.StatusCode() != 200 {
		t.Fatal(c.Response.StatusCode())
	}
	entered, release := make(chan struct{}), make(chan struct{})
	f.compare = func(h, pw []byte) error {
		close(entered)
		<-release
		return bcrypt.CompareHashAndPassword(h, pw)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := enginetest.NewCtx(t, "GET", "/", "Authorization", basic("alice", "guess"))
		enginetest.Serve(c, enginetest.OK, f)
	}()
	<-entered
	start := time.Now()
	c2 := enginetest.NewCtx(t, "GET", "/", "Authorization", basic("alice", "another guess"))
	enginetest.Serve(c2, enginetest.OK, f)
	if c2.Response.StatusCode() != 503 || string(c2.Response.Header.Peek("Retry-After")) != "1" {
		t.Errorf("over max_concurrent_bcrypt: %d Retry-After %q, want 503 and 1", c2.Response.StatusCode(), c2.Response.Header.Peek("Retry-After"))
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the refusal took %v; want it at once", d)
	}
	c3 := enginetest.NewCtx(t, "GET", "/", "Authorization", basic("bob", "builder"))
	enginetest.Serve(c3, enginetest.OK, f)
	if c3.Response.StatusCode() != 200 {
		t.Errorf("a cached credential while bcrypt is saturated: %d, want 200", c3.Response.StatusCode())
	}
	close(release)
	wg.Wait()
}

func TestForwardAuthorization(t *testing.T) {
	f, _ := newTestFilter(t, func(c *Config) { c.ForwardAuthorization = true; c.UserHeader = "" })
	c := enginetest.NewCtx(t, "GET", "/", "Authorization", basic("alice", "wonderland"))
	var got string
	enginetest.Serve(c, func(c *engine.Ctx) { got = string(c.Request.Header.Peek("Authorization")); enginetest.OK(c) }, f)
	if got != basic("alice", "wonderland") {
		t.Errorf("forward_authorization = true: the upstream got %q", got)
	}
}

func TestParseHtpasswd(t *testing.T) {
	good := hashOf(t, "pw", "$2a$")
	for _, tc := range []struct{ file, want string }{
		{"a:" + good + "\nb:$apr1$abc$def\n", "line 2 (user \"b\"): MD5 (apr1) hashes are not accepted"},
		{"a:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", "line 1 (user \"a\"): SHA-1 hashes"},
		{"#x\na:plaintext\n", "line 2 (user \"a\"): plain-text or unknown hashes"},
		{"a:abcdefghijklm\n", "DES crypt"},
		{"a:$6$salt$hash\n", "SHA-crypt"},
		{"a:" + good + "\na:" + good + "\n", "line 2: user \"a\" is listed twice"},
		{"nocolon\n", "line 1: want name:bcrypt-hash"},
		{"a:$2y$04$short\n", "line 1 (user \"a\"): not a valid bcrypt hash"},
		{"# nobody\n\n", "lists no users"},
	} {
		_, err := parseHtpasswd("users.htpasswd", []byte(tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error containing %q", tc.file, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "plaintext") {
			t.Errorf("the error quotes the hash: %v", err)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		mod   func(*Config)
		field string
	}{
		{func(c *Config) { c.HtpasswdFile = "" }, "htpasswd_file"},
		{func(c *Config) { c.Realm = `a"b` }, "realm"},
		{func(c *Config) { c.UserHeader = "X User" }, "user_header"},
		{func(c *Config) { c.UserHeader = "authorization" }, "user_header"},
		{func(c *Config) { c.CacheSize = 0 }, "cache_size"},
		{func(c *Config) { c.CacheTTL = -1 }, "cache_ttl"},
		{func(c *Config) { c.MaxConcurrentBcrypt = -1 }, "max_concurrent_bcrypt"},
	} {
		cfg := &Config{HtpasswdFile: "u"}
		cfg.SetDefaults()
		tc.mod(cfg)
		errs := engine.FieldErrors(cfg.Validate())
		if len(errs) == 0 {
			t.Errorf("%s: no error", tc.field)
			continue
		}
		if fe, ok := engine.AsFieldError(errs[0]); !ok || fe.Field != tc.field {
			t.Errorf("%v, want an error on %s", errs, tc.field)
		}
	}
}

// TestCachedAllocs: a cached credential is accepted without allocating.
func TestCachedAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	f, _ := newTestFilter(t, nil)
	c := enginetest.NewCtx(t, "GET", "/", "Authorization", basic("alice", "wonderland"))
	auth := []byte(basic("alice", "wonderland"))
	run := func() {
		c.Request.Header.SetBytesV("Authorization", auth)
		if f.OnRequest(c) != engine.Continue {
			t.Fatalf("refused: %v", c.Failure)
		}
	}
	run()
	if allocs := testing.AllocsPerRun(1000, run); allocs != 0 {
		t.Errorf("a cached credential: %v allocations per request, want 0", allocs)
	}
}

func BenchmarkCached(b *testing.B) {
	f, _ := newTestFilter(b, nil)
	c := enginetest.NewCtx(b, "GET", "/", "Authorization", basic("alice", "wonderland"))
	auth := []byte(basic("alice", "wonderland"))
	c.Request.Header.SetBytesV("Authorization", auth)
	f.OnRequest(c)
	b.ReportAllocs()
	for b.Loop() {
		c.Request.Header.SetBytesV("Authorization", auth)
		f.OnRequest(c)
	}
}

// TestNormalisingRestored: removing Authorization turns fasthttp's name normalising off for the
// call only; the stages after the filter see it on (a name set in lower case is stored
// canonical), as the server configures it.
func TestNormalisingRestored(t *testing.T) {
	f, _ := newTestFilter(t, nil)
	for range 2 { // verified, then cached
		c := enginetest.NewCtx(t, "GET", "/", "Authorization", basic("alice", "wonderland"))
		var raw string
		enginetest.Serve(c, func(c *engine.Ctx) {
			c.Request.Header.Set("x-after", "1")
			raw = c.Request.Header.String()
			enginetest.OK(c)
		}, f)
		if c.Response.StatusCode() != 200 {
			t.Fatalf("status %d", c.Response.StatusCode())
		}
		if !strings.Contains(raw, "\r\nX-After: 1\r\n") || strings.Contains(raw, "Authorization") {
			t.Errorf("the upstream's header:\n%s\nwant X-After normalised and no Authorization", raw)
		}
	}
}
