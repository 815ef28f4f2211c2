package otellog

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// TestAppendTime checks appendTime against the time package's RFC3339Nano formatting: whole
// seconds, every fraction length, other time zones, the calendar's edges and random instants.
func TestAppendTime(t *testing.T) {
	east := time.FixedZone("east", 5*3600+30*60)
	times := []time.Time{
		time.Date(2026, 12, 7, 7, 48, 12, 0, time.UTC),
		time.Date(2026, 12, 7, 7, 48, 12, 100_000_000, time.UTC),
		time.Date(2026, 12, 7, 7, 48, 12, 120_000_000, time.UTC),
		time.Date(2026, 12, 7, 7, 48, 12, 123_456_789, time.UTC),
		time.Date(2026, 12, 7, 7, 48, 12, 1, time.UTC),
		time.Date(2026, 12, 7, 7, 48, 12, 10, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 999_999_999, east), // the day before in UTC
		time.Date(2024, 2, 29, 23, 59, 59, 500, time.UTC),
		time.Date(2100, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 5, time.UTC),
		time.Now(),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		times = append(times, time.Unix(r.Int64N(10400*365*86400)-2000*365*86400, r.Int64N(1e9)).In(east))
	}
	for _, tm := range times {
		want := tm.UTC().Format(time.RFC3339Nano)
		if got := string(appendTime([]byte("x"), tm)); got != "x"+want {
			t.Fatalf("appendTime(%v) = %q, want %q", tm, got[1:], want)
		}
	}
}

// BenchmarkAppendTime compares appendTime with the time package's formatting of the same layout.
func BenchmarkAppendTime(b *testing.B) {
	tm := time.Date(2026, 12, 7, 7, 48, 12, 123_456_789, time.UTC)
	buf := make([]byte, 0, 64)
	b.Run("appendTime", func(b *testing.B) {
		for b.Loop() {
			buf = appendTime(buf[:0], tm)
		}
	})
	b.Run("AppendFormat", func(b *testing.B) {
		for b.Loop() {
			buf = tm.UTC().AppendFormat(buf[:0], time.RFC3339Nano)
		}
	})
}

func TestAppendIntMatchesStrconv(t *testing.T) {
	for _, v := range []int64{0, 1, 9, 10, 42, 99, 100, 200, 404, 999, 1000, 65536, 1 << 40, -1, -999, -1 << 63, 1<<63 - 1} {
		if got, want := string(appendInt([]byte("x"), v)), string(strconv.AppendInt([]byte("x"), v, 10)); got != want {
			t.Errorf("appendInt(%d) = %q, want %q", v, got, want)
		}
	}
}
