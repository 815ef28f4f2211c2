package engine

import (
	"net/netip"
	"testing"
)

func TestAddrKey(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"192.0.2.1", "192.0.2.1", true},
		{"192.0.2.1", "192.0.2.2", false},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true}, // one /64: one host
		{"2001:db8:1:2::1", "2001:db8:1:3::1", false},
	} {
		a, b := addrKey(netip.MustParseAddr(c.a)), addrKey(netip.MustParseAddr(c.b))
		if (a == b) != c.same {
			t.Errorf("addrKey(%s) = %s, addrKey(%s) = %s; same = %v, want %v", c.a, a, c.b, b, a == b, c.same)
		}
	}
}

func TestUnlimitedWarnings(t *testing.T) {
	var s ServerConfig
	s.SetDefaults()
	if w := s.unlimitedWarnings(); len(w) != 0 {
		t.Errorf("the defaults warn: %v", w)
	}
	s.MaxConnsPerIP, s.HeldResponseBudget = 0, 0
	w := s.unlimitedWarnings()
	if len(w) != 2 {
		t.Fatalf("warnings %v, want max_conns_per_ip and held_response_budget", w)
	}
	for _, e := range w {
		if fe, ok := AsFieldError(e); !ok || !fe.Warning {
			t.Errorf("%v is not a warning", e)
		}
	}
	// A timeout of 0 is no deadline at all (deadline.go): unlimited too.
	s.SetDefaults()
	s.ReadTimeout, s.WriteTimeout = 0, 0
	if w := s.unlimitedWarnings(); len(w) != 2 {
		t.Errorf("warnings %v, want read_timeout and write_timeout", w)
	}
}
