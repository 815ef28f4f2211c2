package keyauth

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/admin"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

const (
	keyMobile  = "mk_4f1c2a9be07d4a3c9d55e1f0a7b3c812"
	keyMobile2 = "mk_rotated_0b6e1d2f3a4c5b6d7e8f9a0b1c2d3e4f"
	keyPartner = "pk_8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a"
)

func hashOf(k string) string {
	s := sha256.Sum256([]byte(k))
	return hex.EncodeToString(s[:])
}

func newFilter(t testing.TB, mod func(*Config)) *Filter {
	t.Helper()
	dir := t.TempDir()
	file := "# consumer  sha256\nmobile-app " + hashOf(keyMobile) + "\nmobile-app sha256:" + hashOf(keyMobile2) + "  # rotation\n\n"
	if err := os.WriteFile(filepath.Join(dir, "keys.txt"), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	var c Config
	c.SetDefaults()
	c.KeysFile = "keys.txt"
	c.Keys = []Key{{Consumer: "partner", Hash: "sha256:" + hashOf(keyPartner)}}
	if mod != nil {
		mod(&c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	f, err := build(&c, &engine.BuildEnv{Dir: dir, Pipeline: "api"})
	if err != nil {
		t.Fatal(err)
	}
	return f.(*Filter)
}

func TestKeys(t *testing.T) {
	f := newFilter(t, func(c *Config) { c.Query = "api_key" })
	for _, tc := range []struct {
		name     string
		uri      string
		headers  []string
		consumer string // "" : refused
		wantURI  string
	}{
		{"header", "/a?x=1", []string{"X-API-Key", keyMobile}, "mobile-app", "/a?x=1"},
		{"rotated key", "/a", []string{"x-api-key", keyMobile2}, "mobile-app", "/a"},
		{"inline key", "/a", []string{"X-Api-Key", keyPartner}, "partner", "/a"},
		{"query", "/a?x=1&api_key=" + keyPartner + "&y=2", nil, "partner", "/a?x=1&y=2"},
		{"query only param", "/a?api_key=" + keyPartner, nil, "partner", "/a"},
		{"escaped query name", "/a?api%5Fkey=" + keyPartner + "&z", nil, "partner", "/a?z"},
		{"missing", "/a", nil, "", ""},
		{"empty", "/a", []string{"X-API-Key", ""}, "", ""},
		{"forged", "/a", []string{"X-API-Key", keyMobile + "x"}, "", ""},
		{"prefix of a key", "/a", []string{"X-API-Key", keyMobile[:10]}, "", ""},
		{"the hash itself", "/a", []string{"X-API-Key", hashOf(keyMobile)}, "", ""},
		{"two headers", "/a", []string{"X-API-Key", keyMobile, "X-API-Key", keyPartner}, "", ""},
		{"header and query", "/a?api_key=" + keyPartner, []string{"X-API-Key", keyMobile}, "", ""},
		{"two query params", "/a?api_key=" + keyPartner + "&api_key=x", nil, "", ""},
		{"over-long", "/a", []string{"X-API-Key", strings.Repeat("k", 5000)}, "", ""},
		{"bad escape", "/a?api_key=%zz", nil, "", ""},
	} {
		c := enginetest.NewCtx(t, "GET", tc.uri, tc.headers...)
		v := f.OnRequest(c)
		cons, ok := engine.ConsumerKey.Get(c)
		if tc.consumer == "" {
			if v != engine.Respond || c.Response.StatusCode() != 401 || ok ||
				string(c.Response.Header.Peek("WWW-Authenticate")) != `APIKey realm="api"` || c.Flags&engine.FlagUnauthorized == 0 {
				t.Errorf("%s: %v %d %q consumer %v", tc.name, v, c.Response.StatusCode(), c.Response.Header.Peek("WWW-Authenticate"), cons)
			}
			if strings.Contains(c.Failure.Error(), keyMobile) || strings.Contains(string(c.Response.Body()), keyMobile) {
				t.Errorf("%s: the key shows in the failure or the body", tc.name)
			}
			continue
		}
		if v != engine.Continue || !ok || cons.ID != tc.consumer || cons.Method != "key_auth" {
			t.Errorf("%s: %v consumer %+v", tc.name, v, cons)
			continue
		}
		if c.Request.Header.Peek("X-API-Key") != nil {
			t.Errorf("%s: the key header reaches the upstream", tc.name)
		}
		if got := string(c.Request.Header.RequestURI()); got != tc.wantURI {
			t.Errorf("%s: request-target %q, want %q", tc.name, got, tc.wantURI)
		}
	}
}

func TestValidateAndBuild(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string
		msg   string
	}{
		{Config{Header: "X-API-Key"}, "keys_file", "keys file"},
		{Config{Query: "a b", KeysFile: "k"}, "query", "invalid"},
		{Config{Header: "bad header", KeysFile: "k"}, "header", "invalid"},
		{Config{KeysFile: "k"}, "header", "set header or query"},
		{Config{Header: "X", Keys: []Key{{Consumer: "a", Hash: keyMobile}}}, "key_hash", "64 hex"},
		{Config{Header: "X", Keys: []Key{{Consumer: "a b", Hash: hashOf("k")}}}, "consumer", "invalid consumer"},
		{Config{Header: "X", Keys: []Key{{Consumer: "a", Hash: hashOf("k")}, {Consumer: "b", Hash: hashOf("k")}}}, "key", "two consumers"},
	} {
		var errs []error
		errs = append(errs, engine.FieldErrors(tc.cfg.Validate())...)
		for _, k := range tc.cfg.Keys {
			errs = append(errs, engine.FieldErrors(k.Validate())...)
		}
		found := false
		for _, e := range errs {
			if fe, ok := engine.AsFieldError(e); ok && fe.Field == tc.field && strings.Contains(fe.Error(), tc.msg) {
				found = true
			}
			if strings.Contains(e.Error(), keyMobile) {
				t.Errorf("an error repeats the key: %v", e)
			}
		}
		if !found {
			t.Errorf("%+v: %v, want an error on %s saying %q", tc.cfg, errs, tc.field, tc.msg)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.txt"), []byte("ok "+hashOf("a")+"\nmobile "+keyMobile+"\n"), 0o600)
	cfg := Config{Header: "X", KeysFile: "bad.txt"}
	_, err := build(&cfg, &engine.BuildEnv{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "keys_file: bad.txt: line 2") || strings.Contains(err.Error(), keyMobile) {
		t.Errorf("bad keys file: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "empty.txt"), []byte("# none yet\n"), 0o600)
	cfg = Config{Header: "X", KeysFile: "empty.txt"}
	if _, err := build(&cfg, &engine.BuildEnv{Dir: dir}); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Errorf("empty keys file: %v", err)
	}
}

func TestKeyAuthAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	f := newFilter(t, nil)
	c := enginetest.NewCtx(t, "GET", "/a")
	if n := testing.AllocsPerRun(1000, func() {
		c.Request.Header.Set("X-API-Key", keyMobile)
		if f.OnRequest(c) != engine.Continue {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Errorf("%v allocations per request, want 0", n)
	}
	f = newFilter(t, func(c *Config) { c.Query = "api_key" })
	if n := testing.AllocsPerRun(1000, func() {
		c.Request.SetRequestURI("/a?api_key=" + keyPartner + "&b=1")
		if f.OnRequest(c) != engine.Continue {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Errorf("query: %v allocations per request, want 0", n)
	}
}

func BenchmarkKeyAuth(b *testing.B) {
	f := newFilter(b, nil)
	c := enginetest.NewCtx(b, "GET", "/a")
	b.ReportAllocs()
	for b.Loop() {
		c.Request.Header.Set("X-API-Key", keyMobile)
		if f.OnRequest(c) != engine.Continue {
			b.Fatal("refused")
		}
	}
}

// TestHashRedacted: /config shows a key block's hash as [redacted].
func TestHashRedacted(t *testing.T) {
	h := hashOf(keyPartner)
	b, err := json.Marshal(admin.Redact(&Config{Header: "X-API-Key", Keys: []Key{{Consumer: "partner", Hash: h}}}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), h) || !strings.Contains(string(b), `"key_hash":"[redacted]"`) || !strings.Contains(string(b), `"consumer":"partner"`) {
		t.Errorf("/config shows %s", b)
	}
}

// TestHeaderNameNormalised: a header name configured in any case finds the key however the
// client spelled it, removes every copy, and leaves fasthttp's name normalising on for the
// stages after the filter (it is turned off only around the lookup and the removal).
func TestHeaderNameNormalised(t *testing.T) {
	for _, name := range []string{"x-api-key", "X-API-KEY", "X-Api-Key"} {
		f := newFilter(t, func(c *Config) { c.Header = name })
		for _, sent := range []string{"X-API-Key", "x-api-key"} {
			c := enginetest.NewCtx(t, "GET", "/a", sent, keyMobile)
			if v := f.OnRequest(c); v != engine.Continue {
				t.Fatalf("header %q, sent as %q: refused (%v)", name, sent, c.Failure)
			}
			c.Request.Header.Set("x-after", "1")
			raw := c.Request.Header.String()
			if !strings.Contains(raw, "\r\nX-After: 1\r\n") || strings.Contains(strings.ToLower(raw), "x-api-key") {
				t.Errorf("header %q, sent as %q: the upstream's header:\n%s\nwant X-After normalised and no key", name, sent, raw)
			}
		}
		c := enginetest.NewCtx(t, "GET", "/a", "X-API-Key", keyMobile, "x-api-key", keyPartner)
		if v := f.OnRequest(c); v != engine.Respond || c.Request.Header.Peek("X-Api-Key") != nil {
			t.Errorf("header %q: two keys in two spellings: verdict %d, a key left: %q", name, v, c.Request.Header.Peek("X-Api-Key"))
		}
	}
}
