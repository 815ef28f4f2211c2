package balancer

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// targetState is the health of one target address of one upstream: everything that must
// survive a configuration reload. It lives in a package-level registry keyed by upstream name
// and address, shared by every built Upstream that names that target, and released when the
// last of them is closed. All fields are atomics: the request path reads and writes them
// without locks.
type targetState struct {
	key  stateKey
	refs int // guarded by states.mu

	// healthy is the active health check's verdict (true until a check says otherwise).
	healthy atomic.Bool
	// probeOK and probeFail count consecutive probe results.
	probeOK, probeFail atomic.Int32
	// ejectedUntil is when an outlier ejection ends (unix nanoseconds; 0 = not ejected).
	ejectedUntil atomic.Int64
	// ejections counts consecutive ejections, for the doubling of the ejection time.
	ejections atomic.Int32
	// consecFailures counts consecutive failed requests (connect errors, resets, 5xx).
	consecFailures atomic.Int32
	// inflight counts requests being served by this target.
	inflight atomic.Int64
	// ewma is the peak-EWMA latency in nanoseconds (float64 bits), stamped at ewmaAt.
	ewma   atomic.Uint64
	ewmaAt atomic.Int64
	// requests and failures are totals since the state was created.
	requests, failures atomic.Uint64
	// recent is a ring of the last failure times (unix nanoseconds), for the admin API.
	recent    [8]atomic.Int64
	recentIdx atomic.Uint32
	// connFailAt and connOKAt are when a connection to the target last failed and last
	// succeeded (a request's or a health check's; unix nanoseconds), for /readyz.
	connFailAt, connOKAt atomic.Int64
}

type stateKey struct{ upstream, addr string }

var states = struct {
	sync.Mutex
	m map[stateKey]*targetState
}{m: map[stateKey]*targetState{}}

// acquireState returns the shared state for addr in upstream, creating it healthy.
func acquireState(upstream, addr string) *targetState {
	k := stateKey{upstream, addr}
	states.Lock()
	defer states.Unlock()
	s := states.m[k]
	if s == nil {
		s = &targetState{key: k}
		s.healthy.Store(true)
		states.m[k] = s
	}
	s.refs++
	return s
}

// releaseState drops one reference; the state is forgotten when none is left.
func releaseState(s *targetState) {
	states.Lock()
	defer states.Unlock()
	s.refs--
	if s.refs <= 0 && states.m[s.key] == s {
		delete(states.m, s.key)
	}
}

// available reports whether the target may take a request now.
func (s *targetState) available(now int64) bool {
	return s.healthy.Load() && s.ejectedUntil.Load() <= now
}

// connectFailWindow is how long a failed connection attempt keeps a target from counting as
// ready when no connection to it has succeeded since.
const connectFailWindow = 10 * time.Second

// noteConnect records whether an attempt to reach the target got a connection.
func (s *targetState) noteConnect(ok bool, now int64) {
	if ok {
		// Most attempts succeed: store only when it changes what connectFailing says.
		if s.connOKAt.Load() <= s.connFailAt.Load() {
			s.connOKAt.Store(now)
		}
		return
	}
	s.connFailAt.Store(now)
}

// connectFailing reports whether the target's latest connection attempt failed within
// connectFailWindow. Passive ejection alone stops at max_ejection_percent, and without a
// health_check a dead target stays "available" forever: this is what tells /readyz that every
// target of an upstream is unreachable.
func (s *targetState) connectFailing(now int64) bool {
	f := s.connFailAt.Load()
	return f != 0 && now-f <= int64(connectFailWindow) && f >= s.connOKAt.Load()
}

// ewmaDecay is the time constant of the latency average: a sample's weight halves in ~7s.
const ewmaDecay = 10 * time.Second

// observeLatency folds a response time into the peak EWMA: a sample above the average replaces
// it at once (so a target that turns slow is avoided immediately), one below decays towards it.
func (s *targetState) observeLatency(rtt time.Duration, now int64) {
	x := float64(rtt)
	prev := math.Float64frombits(s.ewma.Load())
	last := s.ewmaAt.Swap(now)
	var next float64
	if x > prev || prev == 0 {
		next = x
	} else {
		dt := float64(now - last)
		if dt < 0 {
			dt = 0
		}
		w := decay(dt / float64(ewmaDecay))
		next = prev*w + x*(1-w)
	}
	// Concurrent updates may lose one sample to another; that is fine for an average.
	s.ewma.Store(math.Float64bits(next))
}

// decay returns e^-x for x ≥ 0. Under load samples come microseconds apart, where x is tiny and
// three terms of the series are exact to within x³/6 (under 1e-6): math.Exp cost more than the
// rest of the EWMA update.
func decay(x float64) float64 {
	if x < 1.0/64 {
		return 1 - x + x*x/2
	}
	return math.Exp(-x)
}

// latency returns the current peak-EWMA latency in nanoseconds.
func (s *targetState) latency() float64 { return math.Float64frombits(s.ewma.Load()) }

// noteFailure records a failed request for the admin API.
func (s *targetState) noteFailure(now int64) {
	s.failures.Add(1)
	i := s.recentIdx.Add(1) % uint32(len(s.recent))
	s.recent[i].Store(now)
}

// recentFailures counts failures recorded within the last window.
func (s *targetState) recentFailures(now int64, window time.Duration) int {
	n := 0
	for i := range s.recent {
		if t := s.recent[i].Load(); t != 0 && now-t <= int64(window) {
			n++
		}
	}
	return n
}

// decayedLatency is the peak-EWMA latency as of now: without new samples it decays towards zero,
// so a target that was slow is tried again after a while (as Finagle's peak EWMA does on read).
func (s *targetState) decayedLatency(now int64) float64 {
	lat := s.latency()
	if lat == 0 {
		return 0
	}
	dt := float64(now - s.ewmaAt.Load())
	if dt <= 0 {
		return lat
	}
	return lat * math.Exp(-dt/float64(ewmaDecay))
}

// resetLatency forgets the latency average: the target counts as new.
func (s *targetState) resetLatency() {
	s.ewma.Store(0)
	s.ewmaAt.Store(0)
}
