package telemetry

import (
	"strings"
	"testing"
)

const (
	tid = "12345678901234567890123456789012"
	pid = "1234567890123456"
)

// Cases from the W3C trace-context test suite (test/test.py): each traceparent either continues
// the trace (ok) or restarts it.
func TestParseTraceparent(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"valid sampled", "00-" + tid + "-" + pid + "-01", true},
		{"valid unsampled", "00-" + tid + "-" + pid + "-00", true},
		{"leading space", " 00-" + tid + "-" + pid + "-01", true},
		{"leading tab", "\t00-" + tid + "-" + pid + "-01", true},
		{"trailing OWS", "00-" + tid + "-" + pid + "-01 \t", true},
		{"version 00 with more fields", "00-" + tid + "-" + pid + "-01-what-the-future-will-be-like", false},
		{"version 00 trailing dot", "00-" + tid + "-" + pid + "-01.", false},
		{"future version", "cc-" + tid + "-" + pid + "-01", true},
		{"future version more fields", "cc-" + tid + "-" + pid + "-01-what-the-future-will-be-like", true},
		{"future version bad separator", "cc-" + tid + "-" + pid + "-01.what-the-future-will-be-like", false},
		{"version ff", "ff-" + tid + "-" + pid + "-01", false},
		{"version illegal char", ".0-" + tid + "-" + pid + "-01", false},
		{"version illegal char 2", "0.-" + tid + "-" + pid + "-01", false},
		{"version too long", "000-" + tid + "-" + pid + "-01", false},
		{"version too short", "0-" + tid + "-" + pid + "-01", false},
		{"version upper case", "0A-" + tid + "-" + pid + "-01", false},
		{"trace id all zero", "00-00000000000000000000000000000000-" + pid + "-01", false},
		{"trace id upper case", "00-ABCDEF78901234567890123456789012-" + pid + "-01", false},
		{"trace id illegal char", "00-.2345678901234567890123456789012-" + pid + "-01", false},
		{"trace id too long", "00-" + tid + "0-" + pid + "-01", false},
		{"trace id too short", "00-" + tid[1:] + "-" + pid + "-01", false},
		{"parent id all zero", "00-" + tid + "-0000000000000000-01", false},
		{"parent id illegal char", "00-" + tid + "-.234567890123456-01", false},
		{"parent id upper case", "00-" + tid + "-ABCDEF7890123456-01", false},
		{"parent id too long", "00-" + tid + "-" + pid + "0-01", false},
		{"parent id too short", "00-" + tid + "-" + pid[1:] + "-01", false},
		{"flags illegal char", "00-" + tid + "-" + pid + "-.0", false},
		{"flags too long", "00-" + tid + "-" + pid + "-001", false},
		{"flags too short", "00-" + tid + "-" + pid + "-1", false},
		{"empty", "", false},
		{"garbage", strings.Repeat("x", 60), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := parseTraceparent([]byte(tt.in))
			if ok != tt.ok {
				t.Fatalf("parseTraceparent(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			}
			if ok {
				got := string(appendTraceparent(nil, p.traceID, p.spanID, p.flags))
				if !strings.Contains(got, tid) || !strings.Contains(got, pid) {
					t.Errorf("round trip %q lost the ids", got)
				}
			}
		})
	}
}

// Tracestate per Trace Context Level 2: values are the headers in order; want is the combined
// list of the valid members, dropped how many were dropped.
func TestAppendTraceState(t *testing.T) {
	key256 := "z" + strings.Repeat("0", 255)
	tenant241 := "t" + strings.Repeat("0", 240)
	system14 := "s" + strings.Repeat("0", 13)
	var many []string
	for i := 0; i < 32; i++ {
		many = append(many, "k"+string(rune('a'+i%26))+strings.Repeat("x", i/26)+"=1")
	}
	tests := []struct {
		name    string
		values  []string
		want    string
		dropped int
	}{
		{"single", []string{"foo=1"}, "foo=1", 0},
		{"empty header ignored", []string{""}, "", 0},
		{"empty then member", []string{"", "foo=1"}, "foo=1", 0},
		{"member then empty", []string{"foo=1", ""}, "foo=1", 0},
		{"multiple headers combined in order", []string{"foo=1,bar=2", "rojo=1,congo=2", "baz=3"}, "foo=1,bar=2,rojo=1,congo=2,baz=3", 0},
		{"OWS around members", []string{"foo=1 \t , \t bar=2, \t baz=3"}, "foo=1,bar=2,baz=3", 0},
		{"empty members", []string{"foo=1,,,bar=2"}, "foo=1,bar=2", 0},
		// One entry per key; the leftmost is the most recent position and stays.
		{"duplicated key keeps the first", []string{"foo=1,bar=2,foo=3"}, "foo=1,bar=2", 1},
		{"duplicated key across headers", []string{"foo=1", "foo=2"}, "foo=1", 1},
		{"all allowed key chars", []string{"abcdefghijklmnopqrstuvwxyz0123456789_-*/@=1"}, "abcdefghijklmnopqrstuvwxyz0123456789_-*/@=1", 0},
		{"all allowed value chars", []string{"foo= !\"#$%&'()*+-./0123456789:;<>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"}, "foo= !\"#$%&'()*+-./0123456789:;<>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~", 0},
		{"key starting with a digit", []string{"1foo=1"}, "1foo=1", 0},
		{"invalid member dropped alone: space in key", []string{"foo =1,bar=2"}, "bar=2", 1},
		{"invalid member dropped alone: upper case", []string{"a=1,FOO=1,b=2"}, "a=1,b=2", 1},
		{"key with dot", []string{"foo.bar=1"}, "", 1},
		{"key starting with @", []string{"@foo=1,bar=2"}, "bar=2", 1},
		{"multi-tenant key", []string{"foo@bar=1"}, "foo@bar=1", 0},
		{"multi-tenant key with empty system", []string{"foo@=1"}, "foo@=1", 0},
		{"key with two ats", []string{"foo@@bar=1"}, "foo@@bar=1", 0},
		// Level 1 limited tenants to 241 and systems to 14 characters; Level 2 only the key.
		{"long tenant key", []string{tenant241 + "0000@sys=1"}, tenant241 + "0000@sys=1", 0},
		{"long system id", []string{"t@" + system14 + "00000=1"}, "t@" + system14 + "00000=1", 0},
		{"32 members", []string{strings.Join(many, ",")}, strings.Join(many, ","), 0},
		{"33 members: the last dropped", []string{strings.Join(many, ","), "extra=1"}, strings.Join(many, ","), 1},
		{"invalid members do not count toward 32", []string{"BAD=1," + strings.Join(many, ",")}, strings.Join(many, ","), 1},
		{"key of 256", []string{key256 + "=1"}, key256 + "=1", 0},
		{"key of 257", []string{key256 + "0=1,ok=1"}, "ok=1", 1},
		{"value with =", []string{"foo=bar=baz,ok=1"}, "ok=1", 1},
		{"empty value", []string{"foo=,bar=3"}, "bar=3", 1},
		{"no equals sign", []string{"foo,bar=3"}, "bar=3", 1},
		{"value ending in space", []string{"foo=bar ,x=1"}, "foo=bar,x=1", 0},
		{"value too long", []string{"foo=" + strings.Repeat("v", 257) + ",x=1"}, "x=1", 1},
		{"value of 256", []string{"foo=" + strings.Repeat("v", 256)}, "foo=" + strings.Repeat("v", 256), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals := make([][]byte, len(tt.values))
			for i, v := range tt.values {
				vals[i] = []byte(v)
			}
			got, dropped := appendTraceState([]byte("prefix:"), vals)
			if dropped != tt.dropped || string(got) != "prefix:"+tt.want {
				t.Fatalf("appendTraceState(%q) = %q, %d dropped; want %q, %d", tt.values, got, dropped, "prefix:"+tt.want, tt.dropped)
			}
		})
	}
}

// Flags: the random flag is kept, other unknown flags are zeroed.
func TestAppendTraceparentFlags(t *testing.T) {
	var id [16]byte
	var sp [8]byte
	id[15], sp[7] = 1, 1
	for _, tc := range []struct {
		in   byte
		want string
	}{{0x00, "-00"}, {0x01, "-01"}, {0x02, "-02"}, {0x03, "-03"}, {0xff, "-03"}, {0x05, "-01"}} {
		if got := string(appendTraceparent(nil, id, sp, tc.in)); !strings.HasSuffix(got, tc.want) {
			t.Errorf("flags %#x: %q, want suffix %q", tc.in, got, tc.want)
		}
	}
}

func TestRatioBound(t *testing.T) {
	if ratioBound(0) != 0 || ratioBound(-1) != 0 {
		t.Error("ratio 0 must never sample")
	}
	if b := ratioBound(1); b>>1 < (1<<63)-1 {
		t.Error("ratio 1 must always sample")
	}
	// About 10% of draws fall under the bound for 0.1.
	b := ratioBound(0.1)
	n := 0
	for i := uint64(0); i < 100000; i++ {
		if (i*0x9e3779b97f4a7c15)>>1 < b {
			n++
		}
	}
	if n < 9000 || n > 11000 {
		t.Errorf("ratio 0.1 sampled %d of 100000", n)
	}
}

// BenchmarkAppendTraceparent is the traceparent every upstream request carries, sampled or not.
func BenchmarkAppendTraceparent(b *testing.B) {
	var tid [16]byte
	var sid [8]byte
	for i := range tid {
		tid[i] = byte(i * 17)
	}
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendTraceparent(buf[:0], tid, sid, flagSampled|flagRandom)
	}
	if len(buf) != traceparentLen {
		b.Fatal(len(buf))
	}
}
