package telemetry_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// At 100 % sampling with the collector up, a burst of concurrent requests loses no span: the
// default queue and concurrent exports keep up.
func TestNoSpanLostWithCollectorUp(t *testing.T) {
	rcv := startReceiver(t)
	up := gatewaytest.Upstream(t, (&recorder{}).handler(200))
	gw := startWithTelemetry(t, config(rcv.Endpoint, 1, up))
	full := counterValue(t, "sluice_telemetry_spans_total", "outcome", "dropped_queue_full")
	failed := counterValue(t, "sluice_telemetry_spans_total", "outcome", "dropped_export_failed")
	queued := counterValue(t, "sluice_telemetry_spans_total", "outcome", "queued")
	exported := counterValue(t, "sluice_telemetry_spans_total", "outcome", "exported")
	received := len(rcv.Spans())

	const requests, workers = 3000, 8
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < requests/workers; i++ {
				if s := do(t, gw.URL+"/v1/burst").StatusCode(); s != 200 {
					t.Errorf("status %d", s)
					return
				}
			}
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := gw.Tel.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	const want = 4 * requests // server, two filter phases, client
	if d := counterValue(t, "sluice_telemetry_spans_total", "outcome", "dropped_queue_full") - full; d != 0 {
		t.Errorf("%v spans dropped with a full queue", d)
	}
	if d := counterValue(t, "sluice_telemetry_spans_total", "outcome", "dropped_export_failed") - failed; d != 0 {
		t.Errorf("%v spans dropped by failed exports", d)
	}
	if q := counterValue(t, "sluice_telemetry_spans_total", "outcome", "queued") - queued; q != want {
		t.Errorf("queued %v spans, want %d", q, want)
	}
	if e := counterValue(t, "sluice_telemetry_spans_total", "outcome", "exported") - exported; e != want {
		t.Errorf("exported %v spans, want %d", e, want)
	}
	if got := len(rcv.Spans()) - received; got != want {
		t.Errorf("the collector received %d spans, want %d", got, want)
	}
}
