//go:build !wasip1

package filter_test

import (
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/sdk/go/filter"
	"github.com/sluice-gateway/sluice/sdk/go/filtertest"
)

func TestGetters(t *testing.T) {
	h := filtertest.New()
	h.Method, h.URI = "POST", "/a/b%20c?x=1"
	long := strings.Repeat("v", 5000) // larger than the 2 KiB scratch buffer: exercises the retry
	h.ReqHeader = filtertest.Headers("X-One", "1", "X-Many", "a", "x-many", "b", "X-Long", long)
	var req filter.Request
	if got := req.Method(); got != "POST" {
		t.Errorf("Method = %q", got)
	}
	if got := req.Path(); got != "/a/b%20c" {
		t.Errorf("Path = %q", got)
	}
	if got, ok := req.Header().Get("x-one"); !ok || got != "1" {
		t.Errorf("Get(x-one) = %q, %v", got, ok)
	}
	if got, _ := req.Header().Get("X-Long"); got != long {
		t.Errorf("Get(X-Long) has %d bytes, want %d", len(got), len(long))
	}
	if got := strings.Join(req.Header().Values("X-MANY"), ","); got != "a,b" {
		t.Errorf("Values = %q", got)
	}
	if got := strings.Join(req.Header().Names(), ","); got != "x-one,x-many,x-long" {
		t.Errorf("Names = %q", got)
	}
	if _, ok := req.Header().Get("absent"); ok || req.Header().Has("absent") {
		t.Error("absent header reported present")
	}
}

func TestBody(t *testing.T) {
	h := filtertest.New()
	h.ReqBody = []byte(strings.Repeat("0123456789", 1000))
	var req filter.Request
	if got := req.Body().ReadAll(); string(got) != string(h.ReqBody) {
		t.Errorf("ReadAll returned %d bytes, want %d", len(got), len(h.ReqBody))
	}
	req.Body().WriteString("new")
	req.Body().WriteString("-body")
	if string(h.ReqBody) != "new-body" {
		t.Errorf("after writes body = %q", h.ReqBody)
	}
}

type tagger struct{}

func (tagger) HandleRequest(req filter.Request, resp filter.Response) (bool, uint32) {
	if req.Header().Has("x-deny") {
		resp.SetStatusCode(403)
		resp.Body().WriteString("no")
		return false, 0
	}
	return true, 42
}

func (tagger) HandleResponse(reqCtx uint32, _ filter.Request, resp filter.Response, _ bool) {
	if reqCtx == 42 {
		resp.Header().Set("X-Tag", "seen")
	}
}

func TestRun(t *testing.T) {
	h := filtertest.New()
	res := filtertest.Run(tagger{}, func(h *filtertest.Host) { h.Status = 201 })
	if !res.Next || res.ReqCtx != 42 {
		t.Fatalf("Run = %+v", res)
	}
	if v, _ := filtertest.Get(h.RespHeader, "x-tag"); v != "seen" || h.Status != 201 {
		t.Errorf("response: status %d, X-Tag %q", h.Status, v)
	}

	h = filtertest.New()
	h.ReqHeader = filtertest.Headers("X-Deny", "1")
	if res := filtertest.Run(tagger{}, nil); res.Next || h.Status != 403 || string(h.RespBody) != "no" {
		t.Errorf("deny: %+v status %d body %q", res, h.Status, h.RespBody)
	}
}

func TestGetBytesAllocs(t *testing.T) {
	h := filtertest.New()
	h.ReqHeader = filtertest.Headers("X-API-Key", "alpha")
	var req filter.Request
	allocs := testing.AllocsPerRun(100, func() {
		if v, ok := req.Header().GetBytes("x-api-key"); !ok || len(v) != 5 {
			t.Fatal("GetBytes failed")
		}
	})
	// The fake host builds its NUL list with a strings.Builder and a map; what matters for the
	// guest is that the SDK side adds nothing beyond that, so bound it loosely here.
	if allocs > 4 {
		t.Errorf("GetBytes allocates %v times", allocs)
	}
}

// TestTrailers: with the trailers feature, response trailers are kept apart from the headers, as
// Sluice keeps them; request trailers read as none.
func TestTrailers(t *testing.T) {
	filtertest.New()
	if got := filter.EnableFeatures(filter.FeatureTrailers); got&filter.FeatureTrailers == 0 {
		t.Fatalf("features %d lack trailers", got)
	}
	var resp filter.Response
	resp.Trailer().Set("grpc-status", "0")
	if got, ok := resp.Trailer().Get("Grpc-Status"); !ok || got != "0" {
		t.Errorf("trailer grpc-status = %q, %v", got, ok)
	}
	if resp.Header().Has("grpc-status") {
		t.Error("a trailer shows as a header")
	}
	var req filter.Request
	if names := req.Trailer().Names(); len(names) != 0 {
		t.Errorf("request trailers %v, want none", names)
	}
}
