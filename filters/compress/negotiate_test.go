package compress

import "testing"

func TestNegotiate(t *testing.T) {
	all := []string{Zstd, Brotli, Gzip}
	tests := []struct {
		name   string
		header string
		algs   []string
		want   string // "" for identity
	}{
		{"no header", "", all, ""},
		{"only spaces", "   ", all, ""},
		{"single gzip", "gzip", all, Gzip},
		{"browser default", "gzip, deflate, br, zstd", all, Zstd},
		{"configured order breaks ties", "gzip, br", all, Brotli},
		{"order follows config not header", "gzip, br", []string{Gzip, Brotli}, Gzip},
		{"higher q wins over order", "zstd;q=0.5, gzip;q=0.8", all, Gzip},
		{"q=0 forbids", "zstd;q=0, br;q=0, gzip", all, Gzip},
		{"all forbidden", "zstd;q=0, br;q=0, gzip;q=0", all, ""},
		{"star accepts unnamed", "*", all, Zstd},
		{"star with a forbidden coding", "*, zstd;q=0", all, Brotli},
		{"star forbidden, gzip named", "*;q=0, gzip", all, Gzip},
		{"star lower than named", "*;q=0.1, gzip;q=0.5", all, Gzip},
		{"identity preferred over codings", "identity;q=1, gzip;q=0.5", all, ""},
		{"identity tie goes to compression", "identity, gzip", all, Gzip},
		{"identity forbidden still compresses", "identity;q=0, br", all, Brotli},
		{"x-gzip alias", "x-gzip", all, Gzip},
		{"case-insensitive coding and q", "GZip;Q=0.7, BR;q=0.6", all, Gzip},
		{"unknown codings only", "deflate, compress", all, ""},
		{"not configured", "br", []string{Gzip}, ""},
		{"whitespace everywhere", " \tbr ; q=0.9 ,\tgzip;q=1 ", all, Gzip},
		{"three decimals", "gzip;q=0.001, br;q=0.002", all, Brotli},
		{"q=1.000 is valid", "br;q=1.000, zstd;q=0.999", all, Brotli},
		{"duplicate keeps lowest weight", "gzip, gzip;q=0", []string{Gzip}, ""},
		{"accept-ext parameter ignored", "br;level=5;q=0.9, gzip;q=0.8", all, Brotli},
		{"empty elements ignored", ",,gzip,,", all, Gzip},
		// Malformed elements are dropped; the rest of the header still counts.
		{"malformed: q above 1", "br;q=2, gzip;q=0.5", all, Gzip},
		{"malformed: q=1.001", "br;q=1.001, gzip;q=0.5", all, Gzip},
		{"malformed: four decimals", "br;q=0.1234, gzip;q=0.1", all, Gzip},
		{"malformed: negative q", "br;q=-1, gzip;q=0.1", all, Gzip},
		{"malformed: q not a number", "br;q=abc, gzip", all, Gzip},
		{"malformed: empty q", "br;q=, gzip", all, Gzip},
		{"malformed: space before =", "br;q =0.5, gzip", all, Gzip},
		{"malformed: q without value", "br;q", all, ""},
		{"malformed: space inside token", "g zip", all, ""},
		{"malformed: separator in token", "gz/ip, br", all, Brotli},
		{"malformed: parameters without a coding", ";q=1", all, ""},
		{"malformed: non-ASCII", "gzip\xff, zstd", all, Zstd},
		{"malformed: quoted coding", "\"gzip\"", all, ""},
		{"malformed: q=0.5.5", "zstd;q=0.5.5, br;q=0.1", all, Brotli},
		{"malformed: star with bad q forbids nothing", "*;q=x", all, ""},
	}
	if len(tests) < 20 {
		t.Fatalf("only %d cases", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := negotiate([]byte(tt.header), tt.algs)
			got := ""
			if i >= 0 {
				got = tt.algs[i]
			}
			if got != tt.want {
				t.Errorf("negotiate(%q, %v) = %q, want %q", tt.header, tt.algs, got, tt.want)
			}
		})
	}
}

func TestParseQ(t *testing.T) {
	good := map[string]int{"0": 0, "1": 1000, "0.5": 500, "0.05": 50, "0.005": 5, "1.0": 1000, "0.": 0, "1.": 1000}
	for in, want := range good {
		if got, ok := parseQ([]byte(in)); !ok || got != want {
			t.Errorf("parseQ(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "2", "1.5", "0.0001", ".5", "-0", "1e0", "0,5", "01"} {
		if got, ok := parseQ([]byte(in)); ok {
			t.Errorf("parseQ(%q) = %d, accepted", in, got)
		}
	}
}

func TestNegotiateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	h := []byte("gzip;q=0.8, deflate, br;q=0.9, zstd;q=0.95, *;q=0")
	algs := []string{Zstd, Brotli, Gzip}
	if n := testing.AllocsPerRun(100, func() { negotiate(h, algs) }); n != 0 {
		t.Errorf("negotiate allocates %v", n)
	}
}

func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"gzip", "br;q=0.5, *;q=0", "identity;q=0", "x;q=1.000,,"} {
		f.Add(s)
	}
	algs := []string{Zstd, Brotli, Gzip}
	f.Fuzz(func(t *testing.T, h string) {
		i := negotiate([]byte(h), algs)
		if i < -1 || i >= len(algs) {
			t.Fatalf("negotiate(%q) = %d", h, i)
		}
	})
}
