//go:build !wasip1

package main

import (
	"testing"

	"github.com/sluice-gateway/sluice/sdk/go/filtertest"
)

func newFilter(t *testing.T) *apiKey {
	t.Helper()
	return &apiKey{header: "x-api-key", keys: []string{"alpha", "beta"}, consumers: []string{"team-a", "team-b"}}
}

func TestAPIKey(t *testing.T) {
	for _, tc := range []struct {
		name, key  string
		wantNext   bool
		wantStatus uint32
		consumer   string
	}{
		{"missing", "", false, 401, ""},
		{"wrong", "gamma", false, 401, ""},
		{"alpha", "alpha", true, 200, "team-a"},
		{"beta", "beta", true, 200, "team-b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := filtertest.New()
			if tc.key != "" {
				h.ReqHeader = filtertest.Headers("X-API-Key", tc.key)
			}
			var upstreamSaw string
			res := filtertest.Run(newFilter(t), func(h *filtertest.Host) {
				upstreamSaw, _ = filtertest.Get(h.ReqHeader, "x-consumer")
				if _, leaked := filtertest.Get(h.ReqHeader, "x-api-key"); leaked {
					t.Error("API key forwarded upstream")
				}
			})
			if res.Next != tc.wantNext || h.Status != tc.wantStatus {
				t.Fatalf("next %v status %d, want %v %d", res.Next, h.Status, tc.wantNext, tc.wantStatus)
			}
			if !tc.wantNext {
				if string(h.RespBody) != "invalid API key\n" {
					t.Errorf("body %q", h.RespBody)
				}
				return
			}
			got, _ := filtertest.Get(h.RespHeader, "x-consumer")
			if upstreamSaw != tc.consumer || got != tc.consumer {
				t.Errorf("consumer upstream %q response %q, want %q", upstreamSaw, got, tc.consumer)
			}
		})
	}
}
