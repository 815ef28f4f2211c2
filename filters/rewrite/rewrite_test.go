package rewrite

import (
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

func mustNew(t testing.TB, cfg *Config) *Filter {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// target runs the request phase and returns what the balancer would read.
func target(t *testing.T, f *Filter, uri string) (path, query string, querySet bool, host string) {
	c := enginetest.NewCtx(t, "GET", uri)
	f.OnRequest(c)
	ut, ok := engine.UpstreamTargetKey.Get(c)
	if !ok || ut == nil {
		t.Fatal("no upstream target set")
	}
	path, query, querySet, host = string(ut.Path), string(ut.Query), ut.QuerySet, string(ut.Host)
	if ut.Path == nil {
		path = "<unchanged>"
	}
	return
}

// TestRewriteTargetPerRequest: the target's memory is the Ctx's, and a Ctx's next request starts
// from an empty target: nothing of the previous request's rewrite reaches it.
func TestRewriteTargetPerRequest(t *testing.T) {
	f := mustNew(t, &Config{PathRegex: "^/v1/(.*)", PathReplace: "/api/$1"})
	q := mustNew(t, &Config{AddQuery: map[string]string{"v": "2"}})
	var _ engine.RequestOnly = f // the pipeline skips its (empty) response phase

	c := enginetest.NewCtx(t, "GET", "/v1/users/7")
	f.OnRequest(c)
	first, _ := engine.UpstreamTargetKey.Get(c)
	if string(first.Path) != "/api/users/7" {
		t.Fatalf("path %q", first.Path)
	}
	f.OnResponse(c) // nothing to give back: the target stays valid until the request ends
	if ut, _ := engine.UpstreamTargetKey.Get(c); ut != first || string(ut.Path) != "/api/users/7" {
		t.Errorf("after the response phase: %+v", ut)
	}

	// A next request is not given the previous one's target.
	fc := c.Fast
	next := engine.AcquireCtx(fc)
	if ut, ok := engine.UpstreamTargetKey.Get(next); ok && ut != nil {
		t.Errorf("a new request starts with a target %+v", ut)
	}
	engine.ReleaseCtx(next)

	// The same Ctx's target again (as a Ctx's next request gets it): the regex does not match
	// this path, so nothing of the previous rewrite is left; the path buffer's memory is kept.
	c.Path = append(c.Path[:0], "/v2/x"...)
	c.Request.SetRequestURI("/v2/x?a=1")
	f.OnRequest(c)
	ut, _ := engine.UpstreamTargetKey.Get(c)
	if ut != first || ut.Path != nil || ut.QuerySet || ut.Host != nil || cap(ut.PathBuf) == 0 {
		t.Errorf("no match: %+v, want the Ctx's target, empty but for its buffers", ut)
	}
	q.OnRequest(c)
	ut, _ = engine.UpstreamTargetKey.Get(c)
	if ut.Path != nil || !ut.QuerySet || string(ut.Query) != "a=1&v=2" {
		t.Errorf("query rewrite: %+v", ut)
	}

	// A huge rewritten path's buffer is not kept for the Ctx's next request.
	c.Path = append(c.Path[:0], "/v1/"+strings.Repeat("a", 5000)...)
	f.OnRequest(c)
	if len(ut.Path) != len("/api/")+5000 {
		t.Fatalf("huge path: %d bytes", len(ut.Path))
	}
	if ut = c.NewUpstreamTarget(); cap(ut.PathBuf) != 0 {
		t.Errorf("a %d-byte path buffer kept for the next request", cap(ut.PathBuf))
	}
}

func TestRewritePath(t *testing.T) {
	re := mustNew(t, &Config{PathRegex: "^/v1/(.*)", PathReplace: "/api/$1"})
	named := mustNew(t, &Config{PathRegex: `^/users/(?P<id>[0-9]+)$`, PathReplace: "/u/${id}/profile"})
	prefix := mustNew(t, &Config{PathPrefix: "/v1", PathReplace: "/api/"})
	for _, tc := range []struct {
		f         *Filter
		uri, want string
	}{
		{re, "/v1/users/7?x=1", "/api/users/7"},
		{re, "/v2/users", "<unchanged>"},
		{re, "/v1/%2e%2e/admin", "<unchanged>"}, // normalized to /admin: the regex sees what routing saw
		{named, "/users/42", "/u/42/profile"},
		{prefix, "/v1/a/b", "/api/a/b"},
		{prefix, "/v1", "/api/"},
		{prefix, "/v10/a", "<unchanged>"},
	} {
		if got, _, _, _ := target(t, tc.f, tc.uri); got != tc.want {
			t.Errorf("%s: path %q, want %q", tc.uri, got, tc.want)
		}
	}
}

func TestRewriteQueryAndHost(t *testing.T) {
	f := mustNew(t, &Config{Host: "internal.svc:8080", AddQuery: map[string]string{"api key": "a&b", "v": "2"}, RemoveQuery: []string{"debug"}})
	path, q, set, host := target(t, f, "/x?a=1&debug=1&de%62ug=2&v=9&b")
	if path != "<unchanged>" || !set || host != "internal.svc:8080" {
		t.Errorf("path %q set %v host %q", path, set, host)
	}
	if want := "a=1&b&api%20key=a%26b&v=2"; q != want {
		t.Errorf("query %q, want %q", q, want)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string
		msg   string
	}{
		{Config{PathRegex: "^/v1/(.*", PathReplace: "/x"}, "path_regex", "RE2"},
		{Config{PathRegex: "^/v1/(.*)"}, "path_replace", "required"},
		{Config{PathRegex: "^/v1/(.*)", PathReplace: "/api/$2"}, "path_replace", "only 1"},
		{Config{PathRegex: "^/v1/(?P<rest>.*)", PathReplace: "/api/$rst"}, "path_replace", `did you mean "rest"`},
		{Config{PathRegex: "^/v1/(.*)", PathReplace: "/api/$1x"}, "path_replace", "$${1}x"},
		{Config{PathPrefix: "/v1", PathReplace: "api"}, "path_replace", "start with"},
		{Config{PathPrefix: "/v1", PathRegex: "x", PathReplace: "/a"}, "path_prefix", "not both"},
		{Config{Host: "bad host"}, "host", "host name"},
		{Config{}, "path_regex", "changes nothing"},
	} {
		errs := engine.FieldErrors(tc.cfg.Validate())
		found := false
		for _, e := range errs {
			if fe, ok := engine.AsFieldError(e); ok && fe.Field == tc.field && strings.Contains(fe.Error(), tc.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%+v: errors %v, want one on %s saying %q", tc.cfg, errs, tc.field, tc.msg)
		}
	}
}

func TestRewriteAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	for name, cfg := range map[string]*Config{
		"prefix": {PathPrefix: "/v1", PathReplace: "/api", Host: "internal"},
		"query":  {AddQuery: map[string]string{"v": "2"}, RemoveQuery: []string{"debug"}},
	} {
		f := mustNew(t, cfg)
		c := enginetest.NewCtx(t, "GET", "/v1/users/7?debug=1&a=2")
		allocs := testing.AllocsPerRun(1000, func() {
			f.OnRequest(c)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per request, want 0", name, allocs)
		}
	}
	// ^/literal(.*) is matched without regexp (fastpath.go): nothing allocates.
	f := mustNew(t, &Config{PathRegex: "^/v1/(.*)", PathReplace: "/api/$1"})
	c := enginetest.NewCtx(t, "GET", "/v1/users/7")
	if allocs := testing.AllocsPerRun(1000, func() { f.OnRequest(c) }); allocs != 0 {
		t.Errorf("regex ^/v1/(.*): %v allocations per request, want 0", allocs)
	}
	// Any other expression: Go's regexp returns capture positions in a new slice, one
	// allocation, nothing more.
	fr := mustNew(t, &Config{PathRegex: "^/v1/([a-z]+)/(\\d+)$", PathReplace: "/api/$1/$2"})
	if allocs := testing.AllocsPerRun(1000, func() { fr.OnRequest(c) }); allocs > 1 {
		t.Errorf("regex with two groups: %v allocations per request, want at most 1", allocs)
	}
	c2 := enginetest.NewCtx(t, "GET", "/v2/users/7")
	if allocs := testing.AllocsPerRun(1000, func() { f.OnRequest(c2) }); allocs != 0 {
		t.Errorf("regex not matching: %v allocations per request, want 0", allocs)
	}
}

func BenchmarkRewrite(b *testing.B) {
	for name, cfg := range map[string]*Config{
		"regex":  {PathRegex: "^/v1/(.*)", PathReplace: "/api/$1"},
		"prefix": {PathPrefix: "/v1", PathReplace: "/api"},
		"query":  {AddQuery: map[string]string{"v": "2"}, RemoveQuery: []string{"debug"}},
		// make bench-full's row: this regex on the request "/".
		"row": {PathRegex: "^/(.*)$", PathReplace: "/$1"},
	} {
		b.Run(name, func(b *testing.B) {
			f := mustNew(b, cfg)
			uri := "/v1/users/7?debug=1&a=2"
			if name == "row" {
				uri = "/"
			}
			c := enginetest.NewCtx(b, "GET", uri)
			b.ReportAllocs()
			for b.Loop() {
				f.OnRequest(c) // no response phase (RequestOnly)
			}
		})
	}
}
