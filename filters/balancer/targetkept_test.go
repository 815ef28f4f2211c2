package balancer

import (
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

// TestTargetKept checks prepare's shortcut against forwardPath: wherever targetKept says the
// upstream gets the request-target unchanged, forwardPath builds exactly that target, and the
// usual targets take the shortcut.
func TestTargetKept(t *testing.T) {
	targets := []string{
		"/", "/api/items", "/api/items?page=2", "/a/", "/a?", "/a?b#c", "/a#c", "/a/./b", "/a/../b",
		"/a//b", "//a", "/%2e%2e/x", "/a%2Fb", "/a%41", "/a?x=%3F", "/a%3Fb?c", "/a;b/..;/c", "/?q",
	}
	// Routed paths: the normalized one, and ones a filter might have left behind.
	routed := func(uri string) []string {
		c := enginetest.NewCtx(t, "GET", uri)
		return []string{string(c.Path), "/", "/a?b", "/a#c", "/a", "//a", ""}
	}
	strips := []string{"", "/a", "/api"}
	// Rewrites' targets (nil: none).
	rewrites := []*engine.UpstreamTarget{
		nil,
		{Host: []byte("internal")},
		{Path: []byte("/")}, {Path: []byte("/api/items")}, {Path: []byte("/a")}, {Path: []byte("/a?b")},
		{Path: []byte("/a#c")}, {Path: []byte("//a")}, {Path: []byte("")}, {Path: []byte("/a/")},
		{QuerySet: true}, {QuerySet: true, Query: []byte("page=2")}, {QuerySet: true, Query: []byte("b")},
		{Path: []byte("/api/items"), QuerySet: true, Query: []byte("page=2")},
		{Path: []byte("/a"), QuerySet: true}, {Path: []byte("/a"), QuerySet: true, Query: []byte("b#c")},
	}
	for _, uri := range targets {
		for _, path := range routed(uri) {
			for _, strip := range strips {
				for _, rw := range rewrites {
					c := enginetest.NewCtx(t, "GET", uri)
					c.Path = append(c.Path[:0], path...)
					c.Pipeline = engine.NewPipeline("p", engine.MatchConfig{}, strip, nil, engine.TerminalFunc(enginetest.OK))
					if rw != nil {
						engine.UpstreamTargetKey.Set(c, rw)
					}
					kept := targetKept(c, c.Request.Header.RequestURI())
					got := string(forwardPath(nil, c))
					if kept && got != uri {
						t.Errorf("target %q, routed path %q, strip %q, rewrite %+v: targetKept, but forwardPath gives %q", uri, path, strip, rw, got)
					}
				}
			}
		}
	}
	for _, uri := range []string{"/", "/api/items", "/api/items?page=2", "/a/"} {
		c := enginetest.NewCtx(t, "GET", uri)
		if !targetKept(c, c.Request.Header.RequestURI()) {
			t.Errorf("%q: targetKept false for a target the upstream gets unchanged", uri)
		}
	}
	// A rewrite whose target is the client's (make bench-full's `^/(.*)$` → `/$1`), or that
	// changes only the Host, keeps it; one that changes the path or query does not.
	for _, tc := range []struct {
		uri  string
		rw   engine.UpstreamTarget
		kept bool
	}{
		{"/", engine.UpstreamTarget{Path: []byte("/")}, true},
		{"/api/items?page=2", engine.UpstreamTarget{Path: []byte("/api/items")}, true},
		{"/api/items?page=2", engine.UpstreamTarget{Host: []byte("internal")}, true},
		{"/api/items?page=2", engine.UpstreamTarget{QuerySet: true, Query: []byte("page=2")}, true},
		{"/api", engine.UpstreamTarget{Path: []byte("/v1/api")}, false},
		{"/api?a=1", engine.UpstreamTarget{QuerySet: true, Query: []byte("a=1&v=2")}, false},
		{"/api?a=1", engine.UpstreamTarget{QuerySet: true}, false},
	} {
		c := enginetest.NewCtx(t, "GET", tc.uri)
		engine.UpstreamTargetKey.Set(c, &tc.rw)
		if kept := targetKept(c, c.Request.Header.RequestURI()); kept != tc.kept {
			t.Errorf("%q with rewrite %+v: targetKept %v, want %v", tc.uri, tc.rw, kept, tc.kept)
		}
	}
}
