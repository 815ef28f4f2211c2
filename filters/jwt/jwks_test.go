package jwt

import (
	"crypto/elliptic"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
)

// jwksServer is a real HTTP server publishing a JWKS the test can change, fail, or stop.
type jwksServer struct {
	*httptest.Server
	body    atomic.Pointer[[]byte]
	status  atomic.Int32 // 0 = 200 with body
	fetches atomic.Int64
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	s := &jwksServer{}
	s.set(body)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if st := s.status.Load(); st != 0 {
			http.Error(w, "identity provider unavailable", int(st))
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(body []byte) { s.body.Store(&body) }

// eventually polls cond (a readiness check, not a sleep-and-hope) for up to 5 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func remoteFilter(t testing.TB, url string, opt options) *Filter {
	t.Helper()
	return build(t, config(t, func(c *Config) {
		c.JWKSURL = url
		c.Algorithms = []string{"RS256", "ES256"}
	}), t.TempDir(), opt)
}

func hasKid(f *Filter, kid string) bool {
	s := f.remote.current()
	if s == nil {
		return false
	}
	_, ok := s.byKid[kid]
	return ok
}

func wantStatus(t testing.TB, f *Filter, tok string, status int, wantErr error) *engine.Ctx {
	t.Helper()
	ctx, v := run(t, f, bearer(tok)...)
	got := 200
	if v == engine.Respond {
		got = ctx.Response.StatusCode()
	}
	if got != status {
		t.Fatalf("status %d (%v), want %d", got, ctx.Failure, status)
	}
	if wantErr != nil && !errors.Is(ctx.Failure, wantErr) {
		t.Fatalf("failure %v, want %v", ctx.Failure, wantErr)
	}
	return ctx
}

func TestJWKSKidMissRotation(t *testing.T) {
	keyA, keyB := rsaKey(t, 0), ecKey(t, elliptic.P256())
	srv := newJWKSServer(t, jwksJSON(t, jwksKey{kid: "a", key: keyA}))
	f := remoteFilter(t, srv.URL, options{every: time.Hour, cooldown: time.Nanosecond})
	eventually(t, "the first fetch", func() bool { return hasKid(f, "a") })

	tokA := mint(t, "RS256", keyA, "a", claimsFor("alice", nil))
	tokB := mint(t, "ES256", keyB, "b", claimsFor("bob", nil))
	wantStatus(t, f, tokA, 200, nil)

	// The issuer rotates to B. The first token naming kid b triggers a refetch and passes.
	srv.set(jwksJSON(t, jwksKey{kid: "b", key: keyB}))
	before := srv.fetches.Load()
	wantStatus(t, f, tokB, 200, nil)
	if n := srv.fetches.Load() - before; n != 1 {
		t.Errorf("kid miss caused %d fetches, want 1", n)
	}
	// A was dropped: its token, although cached, no longer passes.
	wantStatus(t, f, tokA, 401, ErrUnknownKey)
}

func TestJWKSBackgroundRotation(t *testing.T) {
	keyA, keyB := rsaKey(t, 0), rsaKey(t, 1)
	srv := newJWKSServer(t, jwksJSON(t, jwksKey{kid: "a", key: keyA}))
	// A cooldown of an hour: only the background refresh can bring in new keys.
	f := remoteFilter(t, srv.URL, options{every: 10 * time.Millisecond, cooldown: time.Hour})
	eventually(t, "the first fetch", func() bool { return hasKid(f, "a") })
	tokA := mint(t, "RS256", keyA, "a", claimsFor("alice", nil))
	tokB := mint(t, "RS256", keyB, "b", claimsFor("bob", nil))
	wantStatus(t, f, tokA, 200, nil)

	srv.set(jwksJSON(t, jwksKey{kid: "b", key: keyB}))
	eventually(t, "the refresh to pick up kid b", func() bool { return hasKid(f, "b") })
	wantStatus(t, f, tokB, 200, nil)
	wantStatus(t, f, tokA, 401, ErrUnknownKey)

	// An unchanged JWKS keeps the same key set, so cached tokens stay cached.
	set := f.remote.current()
	n := srv.fetches.Load()
	eventually(t, "two more refreshes", func() bool { return srv.fetches.Load() >= n+2 })
	if f.remote.current() != set {
		t.Error("an unchanged JWKS replaced the key set")
	}
}

func TestJWKSKidMissCooldown(t *testing.T) {
	key, evil := rsaKey(t, 0), rsaKey(t, 2)
	srv := newJWKSServer(t, jwksJSON(t, jwksKey{kid: "a", key: key}))
	f := remoteFilter(t, srv.URL, options{every: time.Hour, cooldown: time.Hour})
	eventually(t, "the first fetch", func() bool { return hasKid(f, "a") })
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches after start, want 1", n)
	}
	// Let the cooldown since the first fetch pass, as if it had happened long ago.
	f.remote.fetchMu.Lock()
	f.remote.lastAttempt = time.Time{}
	f.remote.fetchMu.Unlock()

	// A flood of random kids from 8 clients at once: exactly one refetch.
	var wg sync.WaitGroup
	var refused atomic.Int64
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				tok := mint(t, "RS256", evil, fmt.Sprintf("random-%d-%d", g, i), claimsFor("mallory", nil))
				ctx, v := run(t, f, bearer(tok)...)
				if v == engine.Respond && ctx.Response.StatusCode() == 401 && errors.Is(ctx.Failure, ErrUnknownKey) {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := refused.Load(); n != 200 {
		t.Errorf("%d of 200 random-kid tokens refused as unknown key", n)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("%d fetches after a flood of 200 unknown kids, want 2 (start + one refetch)", n)
	}
	// Once the cooldown is over, a miss may fetch once more.
	f.remote.fetchMu.Lock()
	f.remote.lastAttempt = time.Time{}
	f.remote.fetchMu.Unlock()
	wantStatus(t, f, mint(t, "RS256", evil, "another", claimsFor("m", nil)), 401, ErrUnknownKey)
	wantStatus(t, f, mint(t, "RS256", evil, "yet-another", claimsFor("m", nil)), 401, ErrUnknownKey)
	if n := srv.fetches.Load(); n != 3 {
		t.Errorf("%d fetches, want 3", n)
	}
}

func TestJWKSStaleKeysWhileDown(t *testing.T) {
	key := rsaKey(t, 0)
	for _, mode := range []string{"503", "stopped"} {
		t.Run(mode, func(t *testing.T) {
			srv := newJWKSServer(t, jwksJSON(t, jwksKey{kid: "a", key: key}))
			f := remoteFilter(t, srv.URL, options{every: 10 * time.Millisecond, retry: 10 * time.Millisecond, cooldown: time.Nanosecond, noCache: true})
			eventually(t, "the first fetch", func() bool { return hasKid(f, "a") })
			if mode == "503" {
				srv.status.Store(503)
			} else {
				srv.Close()
			}
			eventually(t, "a failed refresh", func() bool { return f.remote.lastErr.Load() != nil })
			attempts := f.remote.attempts.Load()
			eventually(t, "another failed refresh", func() bool { return f.remote.attempts.Load() > attempts })
			// Fresh tokens (no cache) still verify with the keys fetched before the outage.
			wantStatus(t, f, mint(t, "RS256", key, "a", claimsFor("alice", nil)), 200, nil)
			// An unknown kid during the outage is a 401, not a 503: the keys are loaded.
			wantStatus(t, f, mint(t, "RS256", key, "zzz", claimsFor("alice", nil)), 401, ErrUnknownKey)
		})
	}
}

func TestJWKSFirstFetchFails(t *testing.T) {
	key := rsaKey(t, 0)
	srv := newJWKSServer(t, jwksJSON(t, jwksKey{kid: "a", key: key}))
	srv.status.Store(500)
	f := remoteFilter(t, srv.URL, options{every: time.Hour, retry: time.Hour, cooldown: time.Nanosecond})
	eventually(t, "the first fetch to fail", func() bool { return f.remote.lastErr.Load() != nil })

	tok := mint(t, "RS256", key, "a", claimsFor("alice", nil))
	ctx := wantStatus(t, f, tok, 503, errKeysUnavailable)
	if !strings.Contains(ctx.Failure.Error(), "status 500") || !strings.Contains(ctx.Failure.Error(), srv.URL) {
		t.Errorf("failure %q should say why, for the logs", ctx.Failure)
	}
	if body := string(ctx.Response.Body()); body != "Service Unavailable\n" {
		t.Errorf("503 body = %q: the client sees the short standard body", body)
	}
	if ch := ctx.Response.Header.Peek("WWW-Authenticate"); len(ch) != 0 {
		t.Errorf("503 carries WWW-Authenticate %q: the client did nothing wrong", ch)
	}
	// A request without any token is still a 401: that much is the client's fault.
	if ctx, _ := run(t, f); ctx.Response.StatusCode() != 401 {
		t.Errorf("no token while keys are unavailable: status %d, want 401", ctx.Response.StatusCode())
	}

	// The provider recovers: the next request fetches (the cooldown has passed) and passes.
	srv.status.Store(0)
	wantStatus(t, f, tok, 200, nil)
}

func TestJWKSValidatingStartsNothing(t *testing.T) {
	srv := newJWKSServer(t, jwksJSON(t, jwksKey{kid: "a", key: rsaKey(t, 0)}))
	env := testEnv(t, t.TempDir())
	env.Validating = true
	f, err := newFilter(config(t, func(c *Config) { c.JWKSURL = srv.URL }), env, options{})
	if err != nil {
		t.Fatal(err)
	}
	if f.remote.done != nil {
		t.Error("a refresh goroutine was started under validation")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if n := srv.fetches.Load(); n != 0 {
		t.Errorf("%d fetches under validation, want 0", n)
	}
}

func TestJWKSCloseStopsRefresh(t *testing.T) {
	srv := newJWKSServer(t, jwksJSON(t, jwksKey{kid: "a", key: rsaKey(t, 0)}))
	f, err := newFilter(config(t, func(c *Config) { c.JWKSURL = srv.URL }), testEnv(t, t.TempDir()), options{every: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first fetch", func() bool { return hasKid(f, "a") })
	done := make(chan struct{})
	go func() { _ = f.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the refresh loop")
	}
	n := srv.fetches.Load()
	select {
	case <-f.remote.done:
	default:
		t.Fatal("refresh loop still running after Close")
	}
	if srv.fetches.Load() != n {
		t.Error("fetches continued after Close")
	}
}

func TestParseJWKSSkipsUnusableKeys(t *testing.T) {
	ec := ecKey(t, elliptic.P256())
	src := string(jwksJSON(t,
		jwksKey{kid: "good", key: ec},
		jwksKey{kid: "enc", use: "enc", key: rsaKey(t, 0)},
		jwksKey{kid: "wrongalg", alg: "RS256", key: ec},
	))
	// An entry of a type jwx does not know is dropped without failing the set.
	src = strings.Replace(src, `{"keys":[`, `{"keys":[{"kty":"weird","kid":"unknown"},`, 1)
	set, skipped, err := parseJWKS([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.all) != 1 || set.all[0].kid != "good" {
		t.Errorf("usable keys %v, want only kid good", set.all)
	}
	if len(skipped) != 2 {
		t.Errorf("skipped %v, want the enc key and the EC key claiming RS256", skipped)
	}
	if _, _, err := parseJWKS([]byte(`{"keys":[{"kty":"weird"}]}`)); err == nil {
		t.Error("a JWKS without usable keys parsed")
	}
}

// TestJWKSSharedAcrossReload builds a second filter for the same JWKS (as a hot reload does
// before closing the old configuration) while the identity provider is down: the new filter
// serves the keys the old one fetched, and one fetcher serves both.
func TestJWKSSharedAcrossReload(t *testing.T) {
	key := rsaKey(t, 0)
	srv := newJWKSServer(t, jwksJSON(t, jwksKey{kid: "a", key: key}))
	opt := options{every: 10 * time.Millisecond, retry: 10 * time.Millisecond, noCache: true}
	old := remoteFilter(t, srv.URL, opt)
	eventually(t, "the first fetch", func() bool { return hasKid(old, "a") })
	srv.status.Store(503)
	eventually(t, "a failed refresh", func() bool { return old.remote.lastErr.Load() != nil })

	reloaded := remoteFilter(t, srv.URL, opt)
	if reloaded.remote != old.remote {
		t.Fatal("the reloaded filter started its own fetcher")
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reloaded.remote.done:
		t.Fatal("closing the old configuration stopped the fetcher the new one uses")
	default:
	}
	tok := mint(t, "RS256", key, "a", claimsFor("alice", nil))
	wantStatus(t, reloaded, tok, 200, nil)

	// The provider comes back; the shared fetcher keeps refreshing for the new filter.
	srv.status.Store(0)
	eventually(t, "a successful refresh", func() bool { return reloaded.remote.lastErr.Load() == nil })
	_ = reloaded.Close()
	<-reloaded.remote.done // the last user stopped it
	shared.mu.Lock()
	_, still := shared.m[sharedKey{srv.URL, opt.every}]
	shared.mu.Unlock()
	if still {
		t.Error("the stopped fetcher is still registered")
	}
}
