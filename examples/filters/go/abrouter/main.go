// Command abrouter is a Sluice filter that splits traffic between variants "a" and "b" for an A/B
// test. It sets a request header (X-Variant) that the balancer can hash on or a later route can
// match, keeps each client on its variant with a cookie, and assigns new clients by a hash of
// their address so the split is stable even for clients that drop cookies.
//
// Config: {"header": "x-variant", "cookie": "ab", "percent_b": 20}
package main

import (
	"bytes"
	"encoding/json"

	"github.com/sluice-gateway/sluice/sdk/go/filter"
)

type config struct {
	Header   string `json:"header"`
	Cookie   string `json:"cookie"`
	PercentB uint32 `json:"percent_b"`
}

type abRouter struct {
	cfg    config
	prefix []byte // "<cookie>="
}

// reqCtx values: the variant assigned to a client that had no cookie yet.
const (
	sticky = 0
	newA   = 1
	newB   = 2
)

func main() {}

func init() {
	cfg := config{Header: "x-variant", Cookie: "ab", PercentB: 50}
	if raw := filter.Config(); len(raw) > 0 {
		if err := json.Unmarshal(raw, &cfg); err != nil {
			panic("abrouter: config: " + err.Error())
		}
	}
	if cfg.PercentB > 100 {
		panic("abrouter: percent_b must be 0..100")
	}
	filter.Handle(&abRouter{cfg: cfg, prefix: []byte(cfg.Cookie + "=")})
}

func (f *abRouter) HandleRequest(req filter.Request, _ filter.Response) (bool, uint32) {
	variant, ctx := f.fromCookie(req), uint32(sticky)
	if variant == "" {
		variant, ctx = "a", newA
		if bucket(req.SourceAddr()) < f.cfg.PercentB {
			variant, ctx = "b", newB
		}
	}
	req.Header().Set(f.cfg.Header, variant)
	return true, ctx
}

func (f *abRouter) HandleResponse(reqCtx uint32, _ filter.Request, resp filter.Response, isError bool) {
	if isError || reqCtx == sticky {
		return
	}
	v := "a"
	if reqCtx == newB {
		v = "b"
	}
	resp.Header().Add("set-cookie", f.cfg.Cookie+"="+v+"; Path=/; Max-Age=2592000; SameSite=Lax")
}

// fromCookie returns "a" or "b" when the request carries the variant cookie, else "".
func (f *abRouter) fromCookie(req filter.Request) string {
	for _, line := range req.Header().Values("cookie") {
		for _, c := range bytes.Split([]byte(line), []byte(";")) {
			c = bytes.TrimSpace(c)
			if v, ok := bytes.CutPrefix(c, f.prefix); ok && len(v) == 1 && (v[0] == 'a' || v[0] == 'b') {
				return string(v)
			}
		}
	}
	return ""
}

// bucket maps a client address ("ip:port" or "[ip]:port") to 0..99 with FNV-1a over the IP.
func bucket(addr string) uint32 {
	if i := lastColon(addr); i > 0 {
		addr = addr[:i]
	}
	if len(addr) > 1 && addr[0] == '[' {
		addr = addr[1 : len(addr)-1]
	}
	h := uint32(2166136261)
	for i := 0; i < len(addr); i++ {
		h ^= uint32(addr[i])
		h *= 16777619
	}
	return h % 100
}

func lastColon(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' {
			return i
		}
		if s[i] == ']' {
			return -1
		}
	}
	return -1
}
