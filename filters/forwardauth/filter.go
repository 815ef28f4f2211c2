package forwardauth

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
	"github.com/sluice-gateway/sluice/filters/internal/delheader"
	"github.com/valyala/fasthttp"
)

var requestsTotal = promauto.With(metrics.Registry).NewCounterVec(prometheus.CounterOpts{
	Name: "sluice_forward_auth_requests_total",
	Help: "Requests seen by forward_auth filters, by pipeline and result (cached, allowed, denied, error, error_allowed).",
}, []string{"pipeline", "result"})

var errDenied5xx = errors.New("forward_auth: the authorization service answered with a server error")

var (
	hdrXFMethod = []byte("X-Forwarded-Method")
	hdrXFProto  = []byte("X-Forwarded-Proto")
	hdrXFHost   = []byte("X-Forwarded-Host")
	hdrXFURI    = []byte("X-Forwarded-Uri")
	hdrXFFor    = []byte("X-Forwarded-For")
	strHTTP     = []byte("http")
	strHTTPS    = []byte("https")
)

// maxConsumerID bounds the consumer id taken from consumer_header.
const maxConsumerID = 256

// Register declares the "forward_auth" kind.
func Register(r *engine.Registry) {
	engine.Register(r, "forward_auth", func(cfg *Config, env *engine.BuildEnv) (engine.Filter, error) {
		env.SetsRequestHeaders(cfg.UpstreamHeaders...)
		return New(cfg, env.Pipeline, env.Logger)
	})
}

// Filter asks the authorization service about each request. One value serves every request of
// its pipeline concurrently.
type Filter struct {
	client   *fasthttp.HostClient
	url      string
	where    string // the URL without its query, for logs
	timeout  time.Duration
	reqHdrs  [][]byte
	upHdrs   [][]byte
	upDel    []delheader.Name // upHdrs, to remove
	cliHdrs  [][]byte
	consumer []byte
	allow    bool // on_error = "allow"
	cache    *decisions
	cacheKey []engine.HeaderName
	log      *slog.Logger
	lastWarn atomic.Int64 // unix nanoseconds of the last on_error = "allow" log line

	mCached, mAllowed, mDenied, mError, mErrorAllowed prometheus.Counter
}

// New builds the filter from a validated config.
func New(cfg *Config, pipeline string, log *slog.Logger) (*Filter, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	timeout := cfg.Timeout.D()
	f := &Filter{
		client: &fasthttp.HostClient{
			Addr:                     addr,
			Name:                     "sluice-forward-auth",
			IsTLS:                    u.Scheme == "https",
			MaxConns:                 cfg.MaxConnections,
			MaxConnWaitTimeout:       timeout,
			MaxIdleConnDuration:      10 * time.Second,
			ReadTimeout:              timeout,
			WriteTimeout:             timeout,
			MaxResponseBodySize:      int(cfg.MaxBodyBytes),
			DisablePathNormalizing:   true,
			NoDefaultUserAgentHeader: true,
		},
		url:      cfg.URL,
		where:    u.Scheme + "://" + u.Host + u.Path,
		timeout:  timeout,
		reqHdrs:  bytesOf(cfg.RequestHeaders),
		upHdrs:   bytesOf(cfg.UpstreamHeaders),
		upDel:    delNames(cfg.UpstreamHeaders),
		cliHdrs:  bytesOf(cfg.ClientHeaders),
		allow:    cfg.OnError == "allow",
		cacheKey: headerNames(cfg.CacheKey),
		log:      log,
	}
	if cfg.ConsumerHeader != "" {
		f.consumer = []byte(cfg.ConsumerHeader)
	}
	if cfg.CacheTTL > 0 {
		f.cache = newDecisions(cfg.CacheSize, int64(cfg.CacheTTL.D()))
	}
	f.mCached = requestsTotal.WithLabelValues(pipeline, "cached")
	f.mAllowed = requestsTotal.WithLabelValues(pipeline, "allowed")
	f.mDenied = requestsTotal.WithLabelValues(pipeline, "denied")
	f.mError = requestsTotal.WithLabelValues(pipeline, "error")
	f.mErrorAllowed = requestsTotal.WithLabelValues(pipeline, "error_allowed")
	return f, nil
}

func bytesOf(names []string) [][]byte {
	out := make([][]byte, len(names))
	for i, n := range names {
		out[i] = []byte(n)
	}
	return out
}

// delNames normalises the names once, for removals on every request.
func delNames(names []string) []delheader.Name {
	out := make([]delheader.Name, len(names))
	for i, n := range names {
		out[i] = delheader.New(n)
	}
	return out
}

// headerNames normalises the names once, for lookups on every request.
func headerNames(names []string) []engine.HeaderName {
	out := make([]engine.HeaderName, len(names))
	for i, n := range names {
		out[i] = engine.NewHeaderName(n)
	}
	return out
}

// Close closes the idle connections to the service.
func (f *Filter) Close() error {
	f.client.CloseIdleConnections()
	return nil
}

// OnRequest asks the service (or the cache) and lets the request through, or answers with the
// service's refusal, or 503 when the service cannot be asked.
func (f *Filter) OnRequest(c *engine.Ctx) engine.Verdict {
	// Only the service's values reach the upstream under these names: a client must not be able
	// to send its own.
	for _, n := range f.upDel {
		n.Del(&c.Request.Header)
	}
	now := c.Start.UnixNano()
	if c.Start.IsZero() {
		now = time.Now().UnixNano()
	}
	var key decisionKey
	keyed := false
	if f.cache != nil {
		if keyed = f.cache.key(c, f.cacheKey, &key); keyed {
			if a, ok := f.cache.Get(&key, now); ok {
				f.mCached.Inc()
				f.apply(c, a.headers, a.consumer)
				return engine.Continue
			}
		}
	}

	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	f.prepare(c, req)
	if err := f.client.DoTimeout(req, resp, f.timeout); err != nil {
		return f.failed(c, err)
	}
	status := resp.StatusCode()
	if status < 200 || status > 299 {
		f.mDenied.Inc()
		f.deny(c, resp)
		return engine.Respond
	}
	f.mAllowed.Inc()
	var consumer *engine.Consumer
	if f.consumer != nil {
		if id := resp.Header.PeekBytes(f.consumer); len(id) > 0 && len(id) <= maxConsumerID && printable(id) {
			consumer = &engine.Consumer{ID: string(id), Method: "forward_auth"}
		}
	}
	if keyed {
		a := &allowed{consumer: consumer}
		for _, h := range f.upHdrs {
			if v := resp.Header.PeekBytes(h); v != nil {
				a.headers = append(a.headers, kv{h, append([]byte(nil), v...)})
			}
		}
		f.cache.Put(&key, a, now)
		f.apply(c, a.headers, consumer)
		return engine.Continue
	}
	for _, h := range f.upHdrs {
		if v := resp.Header.PeekBytes(h); v != nil {
			c.Request.Header.SetBytesKV(h, v)
		}
	}
	if consumer != nil {
		engine.ConsumerKey.Set(c, consumer)
	}
	return engine.Continue
}

// OnResponse does nothing.
func (f *Filter) OnResponse(*engine.Ctx) {}

// RequestOnly: the pipeline skips the empty response phase (engine.RequestOnly).
func (f *Filter) RequestOnly() {}

// prepare writes the question: GET of the service's URL with the chosen request headers and
// the original request's method, scheme, host, URI and client address.
func (f *Filter) prepare(c *engine.Ctx, req *fasthttp.Request) {
	req.SetRequestURI(f.url)
	req.Header.SetMethod(fasthttp.MethodGet)
	h := &c.Request.Header
	for _, n := range f.reqHdrs {
		if v := h.PeekBytes(n); v != nil {
			req.Header.SetBytesKV(n, v)
		}
	}
	req.Header.SetBytesKV(hdrXFMethod, h.Method())
	if c.Fast != nil && c.Fast.IsTLS() {
		req.Header.SetBytesKV(hdrXFProto, strHTTPS)
	} else {
		req.Header.SetBytesKV(hdrXFProto, strHTTP)
	}
	req.Header.SetBytesKV(hdrXFHost, h.Host())
	req.Header.SetBytesKV(hdrXFURI, h.RequestURI())
	if c.ClientAddr.IsValid() {
		var buf [64]byte // an IPv6 address with a zone fits
		req.Header.SetBytesKV(hdrXFFor, c.ClientAddr.AppendTo(buf[:0]))
	}
}

// apply puts an allowing decision on the request.
func (f *Filter) apply(c *engine.Ctx, headers []kv, consumer *engine.Consumer) {
	for i := range headers {
		c.Request.Header.SetBytesKV(headers[i].k, headers[i].v)
	}
	if consumer != nil {
		engine.ConsumerKey.Set(c, consumer)
	}
}

// deny answers with the service's refusal: its status, client_headers and body.
func (f *Filter) deny(c *engine.Ctx, resp *fasthttp.Response) {
	r := c.Response
	r.Reset()
	status := resp.StatusCode()
	r.SetStatusCode(status)
	for _, n := range f.cliHdrs {
		for _, v := range resp.Header.PeekAll(string(n)) {
			r.Header.AddBytesKV(n, v)
		}
	}
	if status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified || status < 200 {
		r.SkipBody = true
	} else {
		r.SetBody(resp.Body())
	}
	c.AddFlags(engine.FlagUnauthorized)
	if status >= 500 {
		// The client sees the service's answer; the log line says where it came from.
		c.Failure = fmt.Errorf("%w %d (%s)", errDenied5xx, status, f.where)
	}
}

// failed handles a call that got no answer: 503 (on_error = "deny"), or the request goes on
// unauthenticated (on_error = "allow") with a log line at most once a second.
func (f *Filter) failed(c *engine.Ctx, err error) engine.Verdict {
	err = fmt.Errorf("forward_auth: asking the authorization service %s: %w", f.where, err)
	if f.allow {
		f.mErrorAllowed.Inc()
		now := time.Now().UnixNano()
		if last := f.lastWarn.Load(); now-last >= int64(time.Second) && f.lastWarn.CompareAndSwap(last, now) {
			f.log.Warn("letting a request through unauthenticated (on_error = \"allow\")", "error", err)
		}
		return engine.Continue
	}
	f.mError.Inc()
	return c.Fail(fasthttp.StatusServiceUnavailable, err)
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
