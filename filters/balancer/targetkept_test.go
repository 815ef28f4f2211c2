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
	for _, uri := range targets {
		for _, path := range routed(uri) {
			for _, strip := range strips {
				c := enginetest.NewCtx(t, "GET", uri)
				c.Path = append(c.Path[:0], path...)
				c.Pipeline = engine.NewPipeline("p", engine.MatchConfig{}, strip, nil, engine.TerminalFunc(enginetest.OK))
				kept := targetKept(c, c.Request.Header.RequestURI())
				got := string(forwardPath(nil, c))
				if kept && got != uri {
					t.Errorf("target %q, routed path %q, strip %q: targetKept, but forwardPath gives %q", uri, path, strip, got)
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
	// A rewrite's target is never kept.
	c := enginetest.NewCtx(t, "GET", "/api")
	engine.UpstreamTargetKey.Set(c, &engine.UpstreamTarget{Path: []byte("/api")})
	if targetKept(c, c.Request.Header.RequestURI()) {
		t.Error("targetKept true with a rewrite's UpstreamTarget")
	}
}
