package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// testVec registers a histogram family on Registry for one test, and unregisters it after, so
// that go test -count=N can register it again.
func testVec(tb testing.TB, name string, buckets []float64, labels ...string) *HistogramVec {
	v := NewHistogramVec(name, "A test histogram.", buckets, labels...)
	tb.Cleanup(func() { Registry.Unregister(v) })
	return v
}

func TestHistogramExposition(t *testing.T) {
	v := testVec(t, "sluice_test_duration_seconds", []float64{.001, .01, .1}, "pipeline")
	h := v.WithLabelValues("a")
	if v.WithLabelValues("a") != h {
		t.Fatal("WithLabelValues made a second histogram for the same labels")
	}
	for _, d := range []time.Duration{0, time.Millisecond, 1500 * time.Microsecond, 50 * time.Millisecond, time.Second, -time.Second} {
		h.Observe(d)
	}
	v.WithLabelValues("b").Observe(2 * time.Millisecond)

	families, err := Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]*dto.Histogram
	for _, f := range families {
		if f.GetName() != "sluice_test_duration_seconds" {
			continue
		}
		if f.GetType() != dto.MetricType_HISTOGRAM {
			t.Fatalf("type %v, want histogram", f.GetType())
		}
		got = map[string]*dto.Histogram{}
		for _, m := range f.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetHistogram()
		}
	}
	a := got["a"]
	if a == nil || got["b"] == nil {
		t.Fatalf("children exposed: %v, want a and b", got)
	}
	// 0 and -1s (counted as 0) and 1ms (on the bound: le is inclusive) in le=0.001; 1.5ms in
	// le=0.01; 50ms in le=0.1; 1s only in +Inf.
	want := map[float64]uint64{.001: 3, .01: 4, .1: 5}
	for _, b := range a.GetBucket() {
		if b.GetCumulativeCount() != want[b.GetUpperBound()] {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want[b.GetUpperBound()])
		}
	}
	if len(a.GetBucket()) != 3 {
		t.Errorf("%d buckets, want 3", len(a.GetBucket()))
	}
	if a.GetSampleCount() != 6 {
		t.Errorf("count %d, want 6", a.GetSampleCount())
	}
	if s := a.GetSampleSum(); s < 1.0525 || s > 1.0526 {
		t.Errorf("sum %v, want 1.0525", s)
	}
}

func TestHistogramLabelCount(t *testing.T) {
	v := testVec(t, "sluice_test_labels_seconds", []float64{.001}, "a", "b")
	defer func() {
		if recover() == nil {
			t.Error("one label value for two labels did not panic")
		}
	}()
	v.WithLabelValues("only-a")
}

func TestHistogramObserveAllocs(t *testing.T) {
	h := testVec(t, "sluice_test_allocs_seconds", []float64{.001}).WithLabelValues()
	if n := testing.AllocsPerRun(1000, func() { h.Observe(time.Millisecond) }); n != 0 {
		t.Errorf("Observe allocates %v times", n)
	}
}

// BenchmarkObserve compares Histogram.Observe with client_golang's on the same buckets.
func BenchmarkObserve(b *testing.B) {
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	d := 300 * time.Microsecond
	b.Run("lean", func(b *testing.B) {
		h := testVec(b, "sluice_bench_lean_seconds", buckets).WithLabelValues()
		b.ReportAllocs()
		for b.Loop() {
			h.Observe(d)
		}
	})
	b.Run("client_golang", func(b *testing.B) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: buckets})
		b.ReportAllocs()
		for b.Loop() {
			h.Observe(d.Seconds())
		}
	})
}
