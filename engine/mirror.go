package engine

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/valyala/fasthttp"
)

// MirrorSpec is the balancer's `mirror` block: a sampled copy of the pipeline's requests goes to
// another upstream, fire and forget.
type MirrorSpec struct {
	Upstream      UpstreamRef `hcl:"upstream" json:"upstream"`
	Percent       int         `hcl:"percent,optional" json:"percent"`
	MaxBodyBytes  Size        `hcl:"max_body_bytes,optional" json:"max_body_bytes"`
	MaxConcurrent int         `hcl:"max_concurrent,optional" json:"max_concurrent"`
}

const (
	defaultMirrorPercent    = 100
	defaultMirrorBody       = 64 << 10
	defaultMirrorConcurrent = 16
	maxMirrorBody           = 16 << 20
	maxMirrorConcurrent     = 1024
)

// SetDefaults fills the mirror block's defaults.
func (m *MirrorSpec) SetDefaults() {
	m.Percent = defaultMirrorPercent
	m.MaxBodyBytes = defaultMirrorBody
	m.MaxConcurrent = defaultMirrorConcurrent
}

func (m *MirrorSpec) validate() []error {
	var errs []error
	if m.Percent < 0 || m.Percent > 100 {
		errs = append(errs, FieldErr("mirror.percent", "must be between 0 and 100"))
	}
	if m.MaxBodyBytes < 0 || m.MaxBodyBytes > maxMirrorBody {
		errs = append(errs, FieldErr("mirror.max_body_bytes", "must be between 0 and 16MiB"))
	}
	if m.MaxConcurrent < 1 || m.MaxConcurrent > maxMirrorConcurrent {
		errs = append(errs, FieldErr("mirror.max_concurrent", "must be between 1 and %d", maxMirrorConcurrent))
	}
	return errs
}

var (
	mMirrored = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_mirror_requests_total",
		Help: "Mirrored requests by pipeline and result: sent, dropped (every mirror worker busy), skipped (a streamed or too large body, or an upgrade).",
	}, []string{"pipeline", "result"})
	mMirrorStatus = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_mirror_responses_total",
		Help: "Responses of the mirror upstream (discarded) by pipeline and status class (2xx..5xx).",
	}, []string{"pipeline", "class"})
	mMirrorLatency = metrics.NewHistogramVec("sluice_mirror_duration_seconds",
		"Time the mirror upstream took per mirrored request, by pipeline.",
		[]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}, "pipeline")
)

// mirror copies sampled requests to an upstream on its own workers. The client's request never
// waits for it: when every worker is busy and the queue full, the copy is dropped (counted).
type mirror struct {
	to            Terminal
	per10k        uint64
	maxBody       int
	free, work    chan *mirrorJob
	stop          chan struct{}
	stopOnce      sync.Once
	sent, dropped prometheus.Counter
	skipped       prometheus.Counter
	status        [6]prometheus.Counter // by status/100
	latency       *metrics.Histogram
}

// mirrorJob is a copy of one request and the context it is served in; jobs are reused.
type mirrorJob struct {
	fc           fasthttp.RequestCtx
	path         []byte
	pipe         *Pipeline
	peer, client netip.Addr
}

func newMirror(pipeline string, m *MirrorSpec, to Terminal) *mirror {
	mr := &mirror{
		to: to, per10k: uint64(m.Percent) * 100, maxBody: int(m.MaxBodyBytes),
		free:    make(chan *mirrorJob, m.MaxConcurrent),
		work:    make(chan *mirrorJob, m.MaxConcurrent),
		stop:    make(chan struct{}),
		sent:    mMirrored.WithLabelValues(pipeline, "sent"),
		dropped: mMirrored.WithLabelValues(pipeline, "dropped"),
		skipped: mMirrored.WithLabelValues(pipeline, "skipped"),
		latency: mMirrorLatency.WithLabelValues(pipeline),
	}
	for i := 1; i < len(mr.status); i++ {
		mr.status[i] = mMirrorStatus.WithLabelValues(pipeline, strconv.Itoa(i)+"xx")
	}
	// As many jobs as workers: a copy is taken only when a worker is free or about to be.
	for range m.MaxConcurrent {
		mr.free <- new(mirrorJob)
		go mr.worker()
	}
	return mr
}

// offer sends a copy of c's request to the mirror if it is sampled and a job is free.
func (m *mirror) offer(c *Ctx) {
	if m.per10k < 10000 && rand.Uint64N(10000) >= m.per10k {
		return
	}
	// A streamed body cannot be read twice, and a protocol switch would take the connection.
	if c.Request.IsBodyStream() || len(c.Request.Body()) > m.maxBody || c.Request.Header.Peek("Upgrade") != nil {
		m.skipped.Inc()
		return
	}
	var j *mirrorJob
	select {
	case j = <-m.free:
	default:
		m.dropped.Inc()
		return
	}
	c.Request.CopyTo(&j.fc.Request)
	j.path = append(j.path[:0], c.Path...)
	j.pipe, j.peer, j.client = c.Pipeline, c.Peer, c.ClientAddr
	m.sent.Inc()
	m.work <- j // never blocks: there are as many slots as jobs
}

func (m *mirror) worker() {
	for {
		select {
		case j := <-m.work:
			m.serve(j)
			m.free <- j // never blocks: the job came from free
		case <-m.stop:
			return
		}
	}
}

func (m *mirror) serve(j *mirrorJob) {
	c := AcquireCtx(&j.fc)
	defer ReleaseCtx(c)
	c.Start = time.Now()
	c.Pipeline = j.pipe // its strip_prefix and overrides apply as to the request itself
	c.Path = append(c.Path[:0], j.path...)
	c.Proto = ProtoOf(&j.fc.Request.Header)
	c.Peer, c.ClientAddr = j.peer, j.client
	m.to.Serve(c)
	m.latency.Observe(time.Since(c.Start))
	if s := j.fc.Response.StatusCode() / 100; s >= 1 && s < len(m.status) {
		m.status[s].Inc()
	}
	// A streamed response body is closed unread: nobody wants it.
	if j.fc.Response.IsBodyStream() {
		_ = j.fc.Response.CloseBodyStream()
	}
	j.fc.Response.Reset()
	j.fc.Request.Reset()
}

// close stops the workers when they are done with the copy they are sending, without waiting
// for it (a slow mirror must not hold up a reload). A copy queued after that is never sent.
func (m *mirror) close() {
	m.stopOnce.Do(func() { close(m.stop) })
}
