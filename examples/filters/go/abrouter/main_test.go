//go:build !wasip1

package main

import (
	"testing"

	"github.com/sluice-gateway/sluice/sdk/go/filtertest"
)

func TestBucket(t *testing.T) {
	// Same IP, different ports and notations: same bucket.
	if bucket("10.0.0.7:1234") != bucket("10.0.0.7:9999") {
		t.Error("port changes the bucket")
	}
	if bucket("[::1]:80") != bucket("[::1]:81") {
		t.Error("IPv6 port changes the bucket")
	}
	counts := [2]int{}
	for i := 0; i < 1000; i++ {
		addr := "10.1." + string(rune('0'+i/100%10)) + string(rune('0'+i/10%10)) + "." + string(rune('0'+i%10)) + ":5"
		if bucket(addr) < 20 {
			counts[1]++
		} else {
			counts[0]++
		}
	}
	if counts[1] < 100 || counts[1] > 300 {
		t.Errorf("20%% split gave %v", counts)
	}
}

func TestRouting(t *testing.T) {
	f := &abRouter{cfg: config{Header: "x-variant", Cookie: "ab", PercentB: 100}, prefix: []byte("ab=")}

	h := filtertest.New()
	res := filtertest.Run(f, nil)
	if v, _ := filtertest.Get(h.ReqHeader, "x-variant"); v != "b" || res.ReqCtx != newB {
		t.Errorf("new client: variant %q ctx %d", v, res.ReqCtx)
	}
	if c, _ := filtertest.Get(h.RespHeader, "set-cookie"); c != "ab=b; Path=/; Max-Age=2592000; SameSite=Lax" {
		t.Errorf("set-cookie %q", c)
	}

	h = filtertest.New()
	h.ReqHeader = filtertest.Headers("Cookie", "session=x; ab=a")
	res = filtertest.Run(f, nil)
	if v, _ := filtertest.Get(h.ReqHeader, "x-variant"); v != "a" || res.ReqCtx != sticky {
		t.Errorf("sticky client: variant %q ctx %d", v, res.ReqCtx)
	}
	if _, ok := filtertest.Get(h.RespHeader, "set-cookie"); ok {
		t.Error("sticky client got a new cookie")
	}
}
