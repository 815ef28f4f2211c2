package engine

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strings"
	"time"
)

// BalancerSpec is a pipeline's `balancer` block: one upstream (`upstream = upstream.NAME`), or a
// weighted split between several (`split` blocks, optionally `sticky`), in either case with
// `route_header` and `route_cookie` blocks that send matching requests to a named upstream first.
type BalancerSpec struct {
	Upstream    UpstreamRef    `hcl:"upstream,optional" json:"upstream,omitempty"`
	Split       []SplitSpec    `hcl:"split,block" json:"split,omitempty"`
	Sticky      *StickySpec    `hcl:"sticky,block" json:"sticky,omitempty"`
	RouteHeader []RouteOnValue `hcl:"route_header,block" json:"route_header,omitempty"`
	RouteCookie []RouteOnValue `hcl:"route_cookie,block" json:"route_cookie,omitempty"`
	// Timeouts and Retry override the upstream's for this pipeline's requests (Overrides).
	Timeouts *BalancerTimeouts `hcl:"timeouts,block" json:"timeouts,omitempty"`
	Retry    *BalancerRetry    `hcl:"retry,block" json:"retry,omitempty"`
	// Mirror sends a sampled copy of the requests to another upstream (mirror.go).
	Mirror *MirrorSpec `hcl:"mirror,block" json:"mirror,omitempty"`
}

// BalancerTimeouts is the balancer's `timeouts` block.
type BalancerTimeouts struct {
	Request Duration `hcl:"request,optional" json:"request"`
}

// BalancerRetry is the balancer's `retry` block.
type BalancerRetry struct {
	Attempts      *int     `hcl:"attempts,optional" json:"attempts"`
	PerTryTimeout Duration `hcl:"per_try_timeout,optional" json:"per_try_timeout"`
}

// Overrides are what a pipeline's balancer block changes in its upstreams' settings for the
// pipeline's requests; the zero value changes nothing.
type Overrides struct {
	RequestTimeout time.Duration // 0: the upstream's timeouts.request
	PerTryTimeout  time.Duration // 0: the upstream's retry.per_try_timeout
	RetryAttempts  int           // with SetAttempts: replaces the upstream's retry.attempts
	SetAttempts    bool
}

// maxOverrideAttempts is the upstreams' own limit of retry.attempts.
const maxOverrideAttempts = 5

// overrides returns the Overrides of b (nil: none).
func (b *BalancerSpec) overrides() Overrides {
	var o Overrides
	if b == nil {
		return o
	}
	if t := b.Timeouts; t != nil {
		o.RequestTimeout = t.Request.D()
	}
	if r := b.Retry; r != nil {
		o.PerTryTimeout = r.PerTryTimeout.D()
		if r.Attempts != nil {
			o.RetryAttempts, o.SetAttempts = *r.Attempts, true
		}
	}
	return o
}

// SplitSpec is one `split` block: an upstream and its share of the requests.
type SplitSpec struct {
	Upstream UpstreamRef `hcl:"upstream" json:"upstream"`
	Weight   int         `hcl:"weight" json:"weight"`
}

// StickySpec is the `sticky` block of a split: a client keeps the upstream it was given, by a
// cookie (set on the response when the request has none) or by a hash of a header's value.
type StickySpec struct {
	Cookie string   `hcl:"cookie,optional" json:"cookie,omitempty"`
	Header string   `hcl:"header,optional" json:"header,omitempty"`
	MaxAge Duration `hcl:"max_age,optional" json:"max_age"`
}

// RouteOnValue is a `route_header` or `route_cookie` block: a request whose header (cookie) name
// has value (any value when value is "") goes to upstream.
type RouteOnValue struct {
	Name     string      `hcl:"name" json:"name"`
	Value    string      `hcl:"value,optional" json:"value,omitempty"`
	Upstream UpstreamRef `hcl:"upstream" json:"upstream"`
}

const (
	maxSplitWeight       = 10000
	defaultStickyMaxAge  = 24 * time.Hour
	maxStickyCookieValue = 64
)

// SetDefaults fills the sticky block's defaults.
func (s *StickySpec) SetDefaults() { s.MaxAge = Duration(defaultStickyMaxAge) }

// Validate checks the balancer block.
func (b *BalancerSpec) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) { errs = append(errs, FieldErr(field, format, args...)) }
	switch {
	case b.Upstream == "" && len(b.Split) == 0:
		add("upstream", "a balancer needs upstream = upstream.NAME or split blocks")
	case b.Upstream != "" && len(b.Split) > 0:
		add("split", "a balancer has either upstream or split blocks, not both")
	}
	total := 0
	for i, s := range b.Split {
		if s.Weight < 0 || s.Weight > maxSplitWeight {
			add(fmt.Sprintf("split[%d].weight", i), "weight %d is out of range: use 0 to %d", s.Weight, maxSplitWeight)
		}
		total += s.Weight
		for _, o := range b.Split[:i] {
			if o.Upstream == s.Upstream {
				add(fmt.Sprintf("split[%d].upstream", i), "upstream %q is in an earlier split block", string(s.Upstream))
			}
		}
	}
	if len(b.Split) > 0 && total == 0 {
		add("split", "the split weights add up to 0: give some upstream a weight")
	}
	if s := b.Sticky; s != nil {
		switch {
		case len(b.Split) == 0:
			add("sticky", "sticky applies to a split between upstreams")
		case (s.Cookie == "") == (s.Header == ""):
			add("sticky", "sticky needs exactly one of cookie or header")
		}
		if s.Cookie != "" && !validToken(s.Cookie) {
			add("sticky.cookie", "%q is not a valid cookie name", s.Cookie)
		}
		if s.Header != "" && !validToken(s.Header) {
			add("sticky.header", "%q is not a valid header name", s.Header)
		}
		if s.MaxAge <= 0 {
			add("sticky.max_age", "must be positive")
		}
	}
	if b.Mirror != nil {
		errs = append(errs, b.Mirror.validate()...)
	}
	if t := b.Timeouts; t != nil && t.Request < 0 {
		add("timeouts.request", "must be positive")
	}
	if r := b.Retry; r != nil {
		if r.Attempts != nil && (*r.Attempts < 0 || *r.Attempts > maxOverrideAttempts) {
			add("retry.attempts", "must be between 0 and %d", maxOverrideAttempts)
		}
		if r.PerTryTimeout < 0 {
			add("retry.per_try_timeout", "must not be negative")
		}
	}
	for i, r := range b.RouteHeader {
		if !validToken(r.Name) {
			add(fmt.Sprintf("route_header[%d].name", i), "%q is not a valid header name", r.Name)
		}
	}
	for i, r := range b.RouteCookie {
		if !validToken(r.Name) {
			add(fmt.Sprintf("route_cookie[%d].name", i), "%q is not a valid cookie name", r.Name)
		}
	}
	return errors.Join(errs...)
}

// chooses reports whether the block does more than name one upstream.
func (b *BalancerSpec) chooses() bool {
	return b != nil && (len(b.Split) > 0 || len(b.RouteHeader) > 0 || len(b.RouteCookie) > 0 || b.Mirror != nil)
}

// validToken reports whether s is a non-empty RFC 9110 token (header and cookie names).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// chooser is the Terminal of a pipeline whose balancer chooses between upstreams per request:
// the routes first, in order (route_header, then route_cookie), then the weighted split. It reads
// the request without copying it and allocates nothing.
type chooser struct {
	headers, cookies []valueRoute
	split            []splitArm
	total            uint64 // the sum of the weights
	stickyCookie     string
	stickyHeader     HeaderName // zero: none
	def              Terminal   // the balancer's upstream when there is no split
	mirror           *mirror    // nil: no mirror block
}

type valueRoute struct {
	name, value string
	header      HeaderName // name normalised, for route_header
	to          Terminal
	upstream    string
}

type splitArm struct {
	name   string // the upstream's name, also the sticky cookie's value
	weight uint64
	to     Terminal
	sticky bool // a sticky cookie keeps a client on this arm: setCookie
	// named: the arm is not the pipeline's own upstream, which UpstreamName reports when the
	// Ctx names none, so Serve records its name.
	named     bool
	setCookie presetCookie // setcookie.go
}

// newChooser builds the chooser of b over the built upstreams; upstream is the pipeline's own
// (PipelineSpec.Upstream: the balancer's, else the first split's).
func newChooser(pipeline, upstream string, b *BalancerSpec, ups map[string]Upstream) (*chooser, error) {
	get := func(what string, name UpstreamRef) (Terminal, error) {
		u, ok := ups[string(name)]
		if !ok {
			return nil, fmt.Errorf("%s: no upstream named %q", what, string(name))
		}
		return u, nil
	}
	ch := &chooser{}
	var err error
	if b.Upstream != "" {
		if ch.def, err = get("balancer", b.Upstream); err != nil {
			return nil, err
		}
	}
	for _, r := range b.RouteHeader {
		to, err := get("route_header", r.Upstream)
		if err != nil {
			return nil, err
		}
		ch.headers = append(ch.headers, valueRoute{name: r.Name, value: r.Value, header: NewHeaderName(r.Name), to: to, upstream: string(r.Upstream)})
	}
	for _, r := range b.RouteCookie {
		to, err := get("route_cookie", r.Upstream)
		if err != nil {
			return nil, err
		}
		ch.cookies = append(ch.cookies, valueRoute{name: r.Name, value: r.Value, to: to, upstream: string(r.Upstream)})
	}
	if s := b.Sticky; s != nil {
		ch.stickyCookie = s.Cookie
		if s.Header != "" {
			ch.stickyHeader = NewHeaderName(s.Header)
		}
	}
	for _, s := range b.Split {
		to, err := get("split", s.Upstream)
		if err != nil {
			return nil, err
		}
		arm := splitArm{name: string(s.Upstream), weight: uint64(s.Weight), to: to, named: string(s.Upstream) != upstream}
		if ch.stickyCookie != "" {
			arm.sticky = true
			arm.setCookie = newPresetCookie(fmt.Appendf(nil, "%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax",
				ch.stickyCookie, arm.name, int64(b.Sticky.MaxAge.D()/time.Second)))
		}
		ch.total += arm.weight
		ch.split = append(ch.split, arm)
	}
	if m := b.Mirror; m != nil {
		to, err := get("mirror", m.Upstream)
		if err != nil {
			return nil, err
		}
		ch.mirror = newMirror(pipeline, m, to)
	}
	return ch, nil
}

// Close stops the mirror's workers.
func (ch *chooser) Close() error {
	if ch.mirror != nil {
		ch.mirror.close()
	}
	return nil
}

// Serve sends the request to the upstream the routes or the split choose.
func (ch *chooser) Serve(c *Ctx) {
	if ch.mirror != nil {
		// Copied before the upstream's Serve, which changes the request in place.
		ch.mirror.offer(c)
	}
	if r := ch.route(c); r != nil {
		c.upstream = r.upstream
		r.to.Serve(c)
		return
	}
	if len(ch.split) == 0 {
		ch.def.Serve(c)
		return
	}
	arm, fresh := ch.pick(c)
	if arm.named {
		c.upstream = arm.name
	}
	arm.to.Serve(c)
	if fresh && arm.sticky {
		// The client had no (valid) sticky cookie: this one keeps it on the arm it was given,
		// appended to the response's Set-Cookie fields as Add would append it, without fasthttp
		// working the constant value out again (setcookie.go).
		arm.setCookie.appendTo(&c.Response.Header)
	}
}

// UpstreamName is the name of the upstream serving the request: the one a split or a route of the
// pipeline's balancer chose, else the pipeline's upstream ("" outside a pipeline).
func (c *Ctx) UpstreamName() string {
	if c.upstream != "" {
		return c.upstream
	}
	if p := c.ServingPipeline(); p != nil {
		return p.Upstream
	}
	return ""
}

// route returns the first route the request matches, or nil.
func (ch *chooser) route(c *Ctx) *valueRoute {
	for i := range ch.headers {
		r := &ch.headers[i]
		if v := r.header.Peek(&c.Request.Header); v != nil && (r.value == "" || string(v) == r.value) {
			return r
		}
	}
	for i := range ch.cookies {
		r := &ch.cookies[i]
		if v := c.Request.Header.Cookie(r.name); v != nil && (r.value == "" || string(v) == r.value) {
			return r
		}
	}
	return nil
}

// pick chooses the split's arm: the one the sticky cookie names, or by the sticky header's hash,
// or at random by weight. fresh reports that the choice was not the cookie's.
func (ch *chooser) pick(c *Ctx) (arm *splitArm, fresh bool) {
	if ch.stickyCookie != "" {
		if v := c.Request.Header.Cookie(ch.stickyCookie); len(v) > 0 && len(v) <= maxStickyCookieValue {
			for i := range ch.split {
				// An arm of weight 0 is drained: its clients move on.
				if a := &ch.split[i]; a.weight > 0 && string(v) == a.name {
					return a, false
				}
			}
		}
	}
	var v []byte
	if !ch.stickyHeader.IsZero() { // Peek("") would still look for a header named ""
		v = ch.stickyHeader.Peek(&c.Request.Header)
	}
	var point uint64
	if len(v) > 0 {
		point = fnv1a(v) % ch.total
	} else {
		// The high word of r·total for a uniform 64-bit r: each arm's share is its weight's to
		// within total/2⁶⁴ (about 10⁻¹⁵ for weights adding up to 10,000), without
		// rand.Uint64N's exactness check; r comes from the Ctx's own generator (draw).
		point, _ = bits.Mul64(c.draw(), ch.total)
	}
	for i := range ch.split {
		a := &ch.split[i]
		if point < a.weight {
			return a, true
		}
		point -= a.weight
	}
	return &ch.split[len(ch.split)-1], true // not reached: point < total
}

// draw returns a uniform 64-bit number for the split's choice from c's own generator:
// SplitMix64 (Steele, Lea and Flood, 2014: a Weyl sequence through a 64-bit finalizer, which
// passes BigCrush), seeded from the runtime's generator the first time a Ctx draws and kept with
// the Ctx from one request to the next. The runtime's own ChaCha8 (rand.Uint64) cost about 63
// instructions and 5 code cache lines a choice in the whole gateway, this about 26 (RATIONALE.md
// "Where does the split row's time go beyond the chooser's own instructions?"), on a line of the
// Ctx the balancer writes anyway. A Ctx serves one request at a time, so the state needs no lock; the choice is not a
// secret (a client picks its side with the route header or the cookie).
func (c *Ctx) draw() uint64 {
	if c.rng == 0 {
		c.rng = rand.Uint64() // 0 again 1 time in 2⁶⁴: reseeded on the next draw
	}
	c.rng += 0x9e3779b97f4a7c15
	z := c.rng
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// hdrSetCookie is Set-Cookie as fasthttp normalises it.
var hdrSetCookie = []byte("Set-Cookie")

// fnv1a is the 64-bit FNV-1a hash of b.
func fnv1a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}
