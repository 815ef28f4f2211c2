package ipfilter

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

func mustBuild(t testing.TB, cfg Config, dir string) *Filter {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f, err := build(&cfg, &engine.BuildEnv{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return f.(*Filter)
}

func status(t *testing.T, f *Filter, addr string) int {
	t.Helper()
	c := enginetest.NewCtx(t, "GET", "/")
	c.ClientAddr = netip.Addr{}
	if addr != "" {
		c.ClientAddr = netip.MustParseAddr(addr)
	}
	if f.OnRequest(c) == engine.Continue {
		return 200
	}
	if c.Flags&engine.FlagUnauthorized == 0 {
		t.Errorf("%s: refused without the UAEX flag", addr)
	}
	return c.Response.StatusCode()
}

func TestMostSpecificWins(t *testing.T) {
	f := mustBuild(t, Config{
		Allow: []string{"10.0.0.0/8", "10.1.2.3", "2001:db8::/32", "::ffff:192.0.2.0/120"},
		Deny:  []string{"10.1.0.0/16", "2001:db8:bad::/48"},
	}, "")
	for addr, want := range map[string]int{
		"10.9.9.9":           200,
		"10.1.0.1":           403, // a deny more specific than the allow
		"10.1.2.3":           200, // an allow more specific than that deny
		"11.0.0.1":           403, // not in the allow list
		"::ffff:10.9.9.9":    200, // IPv4-mapped is IPv4
		"::ffff:10.1.0.1":    403,
		"192.0.2.77":         200, // the mapped prefix in the config is the IPv4 one
		"2001:db8::1":        200,
		"2001:db8:bad::1":    403,
		"2001:db9::1":        403,
		"fe80::1%eth0":       403,
		"":                   403, // no client address: fail closed
		"0.0.0.0":            403,
		"255.255.255.255":    403,
		"::":                 403,
		"::10.9.9.9":         403, // IPv4-compatible (deprecated) is IPv6, not IPv4
		"2001:db8:bad:1::99": 403,
	} {
		if got := status(t, f, addr); got != want {
			t.Errorf("%s: %d, want %d", addr, got, want)
		}
	}
}

func TestDenyOnly(t *testing.T) {
	f := mustBuild(t, Config{Deny: []string{"203.0.113.0/24", "::/0"}}, "")
	for addr, want := range map[string]int{"203.0.113.9": 403, "198.51.100.1": 200, "2001:db8::1": 403} {
		if got := status(t, f, addr); got != want {
			t.Errorf("%s: %d, want %d", addr, got, want)
		}
	}
	all := mustBuild(t, Config{Allow: []string{"0.0.0.0/0"}}, "")
	if status(t, all, "1.2.3.4") != 200 || status(t, all, "::1") != 403 {
		t.Error("0.0.0.0/0 covers every IPv4 address and no IPv6 one")
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "allow.txt"), []byte("# offices\n192.0.2.0/24  # HQ\n\n  2001:db8::/32\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "deny.txt"), []byte("192.0.2.128/25\n"), 0o644)
	f := mustBuild(t, Config{AllowFile: "allow.txt", DenyFile: "deny.txt", Allow: []string{"198.51.100.7"}}, dir)
	for addr, want := range map[string]int{"192.0.2.1": 200, "192.0.2.200": 403, "198.51.100.7": 200, "2001:db8::5": 200, "8.8.8.8": 403} {
		if got := status(t, f, addr); got != want {
			t.Errorf("%s: %d, want %d", addr, got, want)
		}
	}
	os.WriteFile(filepath.Join(dir, "bad.txt"), []byte("10.0.0.0/8\n10.0.0.300/32\n"), 0o644)
	cfg := Config{AllowFile: "bad.txt"}
	if _, err := build(&cfg, &engine.BuildEnv{Dir: dir}); err == nil || !strings.Contains(err.Error(), "bad.txt: line 2") || !strings.HasPrefix(err.Error(), "allow_file:") {
		t.Errorf("bad file: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "both.txt"), []byte("10.0.0.0/8\n"), 0o644)
	cfg = Config{AllowFile: "both.txt", Deny: []string{"10.0.0.0/8"}}
	if _, err := build(&cfg, &engine.BuildEnv{Dir: dir}); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("a prefix in both lists: %v", err)
	}
	cfg = Config{DenyFile: "missing.txt"}
	if _, err := build(&cfg, &engine.BuildEnv{Dir: dir}); err == nil || !strings.HasPrefix(err.Error(), "deny_file:") {
		t.Errorf("missing file: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string
		msg   string
	}{
		{Config{}, "allow", "list prefixes"},
		{Config{Allow: []string{"10.0.0.1/8"}}, "allow", `did you mean "10.0.0.0/8"`},
		{Config{Deny: []string{"10.0.0.0/33"}}, "deny", "invalid prefix"},
		{Config{Deny: []string{"example.com"}}, "deny", "invalid address"},
		{Config{Allow: []string{"10.0.0.0/8"}, Deny: []string{"10.0.0.0/8"}}, "deny", "both"},
	} {
		found := false
		for _, e := range engine.FieldErrors(tc.cfg.Validate()) {
			if fe, ok := engine.AsFieldError(e); ok && fe.Field == tc.field && strings.Contains(fe.Error(), tc.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%+v: %v, want an error on %s saying %q", tc.cfg, tc.cfg.Validate(), tc.field, tc.msg)
		}
	}
}

// bigFilter has n random prefixes (80% IPv4 /16–/32, 20% IPv6 /32–/64) in its deny list and
// 127.0.0.0/8 and ::1 allowed.
func bigFilter(t testing.TB, n int) *Filter {
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for range n {
		if r.IntN(5) > 0 {
			a := netip.AddrFrom4([4]byte{byte(r.IntN(126) + 1), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
			fmt.Fprintln(&b, netip.PrefixFrom(a, 16+r.IntN(17)).Masked())
		} else {
			var a [16]byte
			a[0], a[1] = 0x20, 0x01
			for i := 2; i < 8; i++ {
				a[i] = byte(r.IntN(256))
			}
			fmt.Fprintln(&b, netip.PrefixFrom(netip.AddrFrom16(a), 32+r.IntN(33)).Masked())
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "deny.txt"), []byte(b.String()), 0o644)
	return mustBuild(t, Config{DenyFile: "deny.txt", Allow: []string{"127.0.0.0/8", "::1", "2001:db8::/32"}}, dir)
}

func TestIPFilterAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	f := bigFilter(t, 1000)
	c := enginetest.NewCtx(t, "GET", "/")
	if n := testing.AllocsPerRun(1000, func() { f.OnRequest(c) }); n != 0 {
		t.Errorf("%v allocations per request, want 0", n)
	}
}

func BenchmarkIPFilter(b *testing.B) {
	for _, n := range []int{10, 100_000} {
		f := bigFilter(b, n)
		for _, addr := range []string{"127.0.0.1", "2001:db8::1", "::1"} {
			b.Run(fmt.Sprintf("prefixes=%d/%s", n, addr), func(b *testing.B) {
				c := enginetest.NewCtx(b, "GET", "/")
				c.ClientAddr = netip.MustParseAddr(addr)
				b.ReportAllocs()
				for b.Loop() {
					if f.OnRequest(c) != engine.Continue {
						b.Fatal("refused")
					}
				}
			})
		}
	}
}

// TestTrieMatchesLinearScan compares the trie with the definition (the longest covering prefix
// decides) on random nested prefixes and addresses near them, in both families.
func TestTrieMatchesLinearScan(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for round := range 20 {
		type entry struct {
			p netip.Prefix
			v verdict
		}
		var list []entry
		seen := map[netip.Prefix]bool{}
		v4 := round%2 == 0
		randAddr := func() netip.Addr {
			if r.IntN(8) == 0 { // anywhere: the top table's other entries
				if v4 {
					return netip.AddrFrom4([4]byte{byte(r.IntN(256)), byte(r.IntN(256)), 1, 2})
				}
				return netip.AddrFrom16([16]byte{byte(r.IntN(256)), byte(r.IntN(256)), 3: 1})
			}
			if v4 {
				// A small space, so that prefixes nest and addresses hit them.
				return netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))})
			}
			var a [16]byte
			a[0], a[1], a[2] = 0x20, 0x01, byte(r.IntN(4))
			for i := 3; i < 16; i++ {
				a[i] = byte(r.IntN(256))
			}
			return netip.AddrFrom16(a)
		}
		maxBits := 32
		if !v4 {
			maxBits = 128
		}
		tr := newTrie(uint8(maxBits))
		for range 300 {
			p := netip.PrefixFrom(randAddr(), r.IntN(maxBits+1)).Masked()
			if seen[p] {
				continue
			}
			seen[p] = true
			v := verdict(1 + r.IntN(2))
			list = append(list, entry{p, v})
			tr.insert(p, v)
		}
		tr.finish()
		for range 3000 {
			a := randAddr()
			want, wantLen := none, -1
			for _, e := range list {
				if e.p.Contains(a) && e.p.Bits() > wantLen {
					want, wantLen = e.v, e.p.Bits()
				}
			}
			hi, lo := halves(a)
			if got := tr.lookup(hi, lo); got != want {
				t.Fatalf("round %d: %s: %d, want %d (from a /%d)", round, a, got, want, wantLen)
			}
		}
	}
}
