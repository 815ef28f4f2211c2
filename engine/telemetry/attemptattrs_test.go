package telemetry

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"
)

// TestAttemptAttrsSlots: an attempt's span gets the same attributes, in the same order, whether
// its pipeline keeps them for its target (the first attemptSlots targets) or not.
func TestAttemptAttrsSlots(t *testing.T) {
	tel := testTelemetry(t, 1)
	c := engine.AcquireCtx(new(fasthttp.RequestCtx))
	defer engine.ReleaseCtx(c)
	pi := &pipeInfo{}
	for round := range 2 {
		for i := range attemptSlots + 2 {
			target := fmt.Sprintf("10.0.0.%d:80", i)
			if i%2 == 1 {
				target = fmt.Sprintf("host%d.example:8080", i)
			}
			r := tel.recs.get(nil, "GET", trace.SpanKindClient, trace.TraceID{1}, trace.SpanID{2}, 1, 0)
			pi.attemptAttrs(r, c, target)
			if got, want := r.Attributes(), attemptAttrs(nil, target, "", false); !reflect.DeepEqual(got, want) {
				t.Errorf("round %d, %s: %v, want %v", round, target, got, want)
			}
			if kept := len(r.fixedPB) > 0; kept != (i < attemptSlots) {
				t.Errorf("round %d, %s: kept %v", round, target, kept)
			}
		}
	}
}
