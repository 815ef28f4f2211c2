package fault

import (
	"context"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

func TestAbortPercent(t *testing.T) {
	f := New(&Config{AbortStatus: 503, AbortPercent: 30, DelayPercent: 100}, "fault_test_percent")
	before := counter(t, f)
	aborted := 0
	const n = 4000
	for range n {
		c := enginetest.NewCtx(t, "GET", "/x")
		if f.OnRequest(c) == engine.Respond {
			aborted++
			if c.Response.StatusCode() != 503 || c.Failure != nil {
				t.Fatalf("abort: status %d failure %v", c.Response.StatusCode(), c.Failure)
			}
		}
	}
	// 30% of 4000 is 1200, standard deviation about 29: 8 sigma either way.
	if aborted < 970 || aborted > 1430 {
		t.Errorf("%d of %d aborted, want about 30%%", aborted, n)
	}
	if got := counter(t, f) - before; int(got) != aborted {
		t.Errorf("abort counter %v, want %d", got, aborted)
	}
}

func counter(t *testing.T, f *Filter) float64 {
	var m dto.Metric
	if err := f.aborted.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestHeaderOnly(t *testing.T) {
	f := New(&Config{AbortStatus: 500, AbortPercent: 100, Header: "X-Fault"}, "fault_test_header")
	if v := f.OnRequest(enginetest.NewCtx(t, "GET", "/x")); v != engine.Continue {
		t.Error("a request without the header was affected")
	}
	if v := f.OnRequest(enginetest.NewCtx(t, "GET", "/x", "X-Fault", "")); v != engine.Respond {
		t.Error("a request with the header was not aborted")
	}
}

func TestDelay(t *testing.T) {
	f := New(&Config{Delay: engine.Duration(50 * time.Millisecond), DelayPercent: 100}, "fault_test_delay")
	c := enginetest.NewCtx(t, "GET", "/x")
	start := time.Now()
	if v := f.OnRequest(c); v != engine.Continue {
		t.Fatal("delayed request did not continue")
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("delay %v, want at least 50ms", d)
	}
	// A client that goes away ends the wait at once.
	long := New(&Config{Delay: engine.Duration(time.Minute), DelayPercent: 100}, "fault_test_delay")
	c = enginetest.NewCtx(t, "GET", "/x")
	ctx, cancel := context.WithCancel(context.Background())
	c.ClientContext = ctx
	time.AfterFunc(20*time.Millisecond, cancel)
	start = time.Now()
	if v := long.OnRequest(c); v != engine.Respond || c.Failure == nil {
		t.Errorf("verdict %v failure %v, want the wait ended for a gone client", v, c.Failure)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("waited %v after the client left", d)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{Delay: engine.Duration(2 * time.Minute), DelayPercent: 100, AbortPercent: 100}, "delay"},
		{Config{AbortStatus: 503, AbortPercent: 101, DelayPercent: 100}, "abort_percent"},
		{Config{AbortStatus: 42, AbortPercent: 100, DelayPercent: 100}, "abort_status"},
		{Config{AbortStatus: 503, AbortPercent: 100, DelayPercent: 100, Header: "bad:name"}, "header"},
		{Config{DelayPercent: 100, AbortPercent: 100}, "delay"},
	} {
		errs := engine.FieldErrors(tc.cfg.Validate())
		if len(errs) == 0 || !strings.HasPrefix(errs[0].Error(), tc.field+":") {
			t.Errorf("%+v: %v, want an error on %s", tc.cfg, errs, tc.field)
		}
	}
}

func TestFaultAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	miss := New(&Config{AbortStatus: 503, AbortPercent: 100, Header: "X-Fault"}, "fault_test_allocs")
	abort := New(&Config{AbortStatus: 503, AbortPercent: 100}, "fault_test_allocs")
	delay := New(&Config{Delay: engine.Duration(time.Microsecond), DelayPercent: 100}, "fault_test_allocs")
	c := enginetest.NewCtx(t, "GET", "/x")
	for name, f := range map[string]*Filter{"no header": miss, "abort": abort, "delay": delay} {
		if allocs := testing.AllocsPerRun(200, func() { f.OnRequest(c) }); allocs != 0 {
			t.Errorf("%s: %v allocations per request, want 0", name, allocs)
		}
	}
}

func BenchmarkFault(b *testing.B) {
	for name, f := range map[string]*Filter{
		"no_header": New(&Config{AbortStatus: 503, AbortPercent: 100, Header: "X-Fault"}, "fault_bench"),
		"abort_5pc": New(&Config{AbortStatus: 503, AbortPercent: 5}, "fault_bench"),
	} {
		b.Run(name, func(b *testing.B) {
			c := enginetest.NewCtx(b, "GET", "/x")
			b.ReportAllocs()
			for b.Loop() {
				f.OnRequest(c)
			}
		})
	}
}
