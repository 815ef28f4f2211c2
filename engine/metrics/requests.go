package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The request metrics (RED): every request the gateway answers is counted once in
// sluice_requests_total, by pipeline ("(none)" for requests refused before routing or matching
// no pipeline), method, status class, status code and who made the response. Each label takes
// values from a fixed set, whatever the clients send, so the number of series is bounded by
// the configuration: methods outside MethodNames count as "OTHER", codes outside CodeNames as
// "other" (their class still says which).
var (
	requests = NewCounterVecOn(prometheus.CounterOpts{
		Name: "sluice_requests_total",
		Help: "Requests answered, by pipeline (\"(none)\": refused before routing, or no pipeline matched), method (OTHER outside the allow-list), code_class (1xx..5xx, other), code (an allow-listed status code, else other) and source (gateway: the gateway made the response; upstream: relayed from an upstream).",
	}, "pipeline", "method", "code_class", "code", "source")

	requestDuration = NewHistogramVec("sluice_request_duration_seconds",
		"Time from the start of handling to the end of the response phase, by pipeline, method and code_class.",
		[]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}, "pipeline", "method", "code_class")

	requestBytes = NewCounterVecOn(prometheus.CounterOpts{
		Name: "sluice_request_body_bytes_total",
		Help: "Request body bytes received from clients, by pipeline (a streamed body of unknown length counts 0).",
	}, "pipeline")
	responseBytes = NewCounterVecOn(prometheus.CounterOpts{
		Name: "sluice_response_body_bytes_total",
		Help: "Response body bytes sent to clients, by pipeline.",
	}, "pipeline")
)

// NewCounterVecOn registers a counter family on Registry.
func NewCounterVecOn(opts prometheus.CounterOpts, labels ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(opts, labels)
	Registry.MustRegister(v)
	return v
}

// Unrouted is the pipeline label of requests that no pipeline served.
const Unrouted = "(none)"

// MethodNames are the methods counted under their own name; any other is OTHER.
var MethodNames = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "OTHER"}

const nMethods = len(MethodNames)

// MethodIndex returns m's index in MethodNames (OTHER's for any method not listed). It does not
// allocate: a switch on string(m) compares the bytes in place.
func MethodIndex(m []byte) int {
	switch string(m) {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "DELETE":
		return 4
	case "CONNECT":
		return 5
	case "OPTIONS":
		return 6
	case "TRACE":
		return 7
	case "PATCH":
		return 8
	}
	return nMethods - 1
}

// CodeNames are the status codes counted under their own code label; any other is "other".
var CodeNames = [...]int{200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 408, 413, 429, 499, 500, 502, 503, 504}

// classNames are the code_class values by status/100 (index 0: outside 100..599).
var classNames = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

// A code slot is an allow-listed code (0..len(CodeNames)-1) or "other" within a class
// (len(CodeNames)+class).
const nCodeSlots = len(CodeNames) + len(classNames)

// codeSlot maps a status (100..599) to its slot; codeClass to its class.
var codeSlot [600]uint8

func init() {
	for s := 100; s < 600; s++ {
		codeSlot[s] = uint8(len(CodeNames) + s/100)
	}
	for i, c := range CodeNames {
		codeSlot[c] = uint8(i)
	}
}

func slotOf(status int) (slot, class int) {
	if status < 100 || status >= 600 {
		return len(CodeNames), 0
	}
	return int(codeSlot[status]), status / 100
}

func slotLabels(slot, class int) (code, codeClass string) {
	if slot < len(CodeNames) {
		return itoa3(CodeNames[slot]), classNames[class]
	}
	return "other", classNames[class]
}

func itoa3(n int) string {
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}

// RequestSeries are one pipeline's request metrics. Each series is made the first time a
// request needs it (so no always-zero series are exported) and kept in an array indexed by
// method, code slot and source: recording is an index computation and an atomic add, without
// a map lookup, formatting or allocation.
type RequestSeries struct {
	pipeline string
	retired  atomic.Bool
	counts   [nCodeSlots][nMethods][2]atomic.Pointer[prometheus.Counter]
	latency  [len(classNames)][nMethods]atomic.Pointer[Histogram]
	in, out  prometheus.Counter
}

// NewRequestSeries returns the request metrics of the pipeline named pipeline.
func NewRequestSeries(pipeline string) *RequestSeries {
	return &RequestSeries{pipeline: pipeline, in: requestBytes.WithLabelValues(pipeline), out: responseBytes.WithLabelValues(pipeline)}
}

// Pipeline returns the pipeline label.
func (r *RequestSeries) Pipeline() string { return r.pipeline }

// Request is what one answered request adds to the metrics.
type Request struct {
	Method       []byte
	Status       int
	FromUpstream bool
	// Duration is observed in the latency histogram when Timed.
	Duration time.Duration
	Timed    bool
	// BytesIn and BytesOut are the body bytes received and sent.
	BytesIn, BytesOut int64
}

var sourceNames = [2]string{"gateway", "upstream"}

// Record counts one answered request.
func (r *RequestSeries) Record(q *Request) {
	m := MethodIndex(q.Method)
	slot, class := slotOf(q.Status)
	src := 0
	if q.FromUpstream {
		src = 1
	}
	p := &r.counts[slot][m][src]
	ctr := p.Load()
	if ctr == nil {
		if r.retired.Load() {
			return // a request still draining on a pipeline a reload removed: its series are gone
		}
		code, cc := slotLabels(slot, class)
		// WithLabelValues returns the same counter to concurrent first calls: storing either
		// is fine.
		c := requests.WithLabelValues(r.pipeline, MethodNames[m], cc, code, sourceNames[src])
		p.Store(&c)
		ctr = &c
	}
	(*ctr).Inc()
	if q.Timed {
		hp := &r.latency[class][m]
		h := hp.Load()
		if h == nil {
			if r.retired.Load() {
				return
			}
			h = requestDuration.WithLabelValues(r.pipeline, MethodNames[m], classNames[class])
			hp.Store(h)
		}
		h.Observe(q.Duration)
	}
	if q.BytesIn > 0 {
		r.in.Add(float64(q.BytesIn))
	}
	if q.BytesOut > 0 {
		r.out.Add(float64(q.BytesOut))
	}
}

// DeletePipeline removes every request series of the pipeline named name (one a reload
// removed), and marks r (if not nil) retired so that requests still draining on it do not make
// them again.
func DeletePipeline(r *RequestSeries, name string) {
	if r != nil {
		r.retired.Store(true)
	}
	l := prometheus.Labels{"pipeline": name}
	requests.DeletePartialMatch(l)
	requestDuration.DeletePartialMatch(l)
	requestBytes.DeletePartialMatch(l)
	responseBytes.DeletePartialMatch(l)
}

// unrouted counts the requests no pipeline served.
var unrouted = NewRequestSeries(Unrouted)

// UnroutedRequests returns the series of requests no pipeline served (refused before routing,
// or matching no pipeline).
func UnroutedRequests() *RequestSeries { return unrouted }
