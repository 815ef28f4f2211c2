package ratelimit

import "time"

// gcra holds the parameters of the generic cell rate algorithm in one time unit (nanoseconds for
// the local store, microseconds for the Redis script, whose clock is Redis TIME).
//
// The only state per key is its theoretical arrival time (TAT): the time at which the key would
// be back to "idle" had it sent nothing more. A request arriving at now conforms when
// now >= TAT - tolerance; it then moves TAT to max(TAT, now) + interval. A key whose TAT is not
// after now is indistinguishable from a key never seen, which is why idle keys can be dropped
// without changing any decision.
type gcra struct {
	interval  int64 // T: the emission interval, period/limit rounded up
	tolerance int64 // tau = (burst-1)*T: how far ahead of now TAT may run and still admit
	second    int64 // one second in this unit
	windowSec int64 // W: the period rounded up to whole seconds, the RateLimit-Policy's w
}

// newGCRA returns the parameters for limit requests per period of which burst (at least 1) may
// arrive back to back.
func newGCRA(limit int, period time.Duration, burst int, unit time.Duration) gcra {
	p := int64(period)
	u := int64(unit)
	// Rounding T up (never down) keeps the guarantee: limit intervals of T never fit in less
	// than one period, so no window of length period can hold limit+1 admissions.
	t := ceilDiv(p, int64(limit)*u)
	return gcra{
		interval:  t,
		tolerance: int64(max(burst, 1)-1) * t,
		second:    int64(time.Second) / u,
		windowSec: ceilDiv(p, int64(time.Second)),
	}
}

// decide applies one request at now to a key whose TAT is tat (0 or anything not after now for a
// key with no state). It returns whether the request is admitted and the key's TAT afterwards.
func (g *gcra) decide(tat, now int64) (bool, int64) {
	if tat < now {
		tat = now
	}
	if tat-g.tolerance > now {
		return false, tat
	}
	return true, tat + g.interval
}

// fields returns the RateLimit field's values for a key whose TAT is now + ahead (after the
// request's decision): r, how many requests sent right now, back to back, would be admitted, and
// t, the seconds until that changes for the better: until the key has its whole burst again, or,
// when r = 0, until the next request conforms (the Retry-After of a refusal). So r never promises
// a request that would be refused: a client may send r requests at once.
func (g *gcra) fields(ahead int64) (r, t int64) {
	if ahead < 0 {
		ahead = 0
	}
	// Request k (k = 0, 1, …) sent now conforms when now >= now + ahead + k*T - tau.
	if ahead > g.tolerance {
		return 0, g.retryAfter(ahead)
	}
	return (g.tolerance-ahead)/g.interval + 1, max(ceilDiv(ahead, g.second), 1)
}

// retryAfter is the number of whole seconds (at least 1) before a refused request, whose key has
// TAT = now + ahead, would conform.
func (g *gcra) retryAfter(ahead int64) int64 {
	wait := ahead - g.tolerance
	if wait <= 0 {
		return 1
	}
	return max(ceilDiv(wait, g.second), 1)
}

// windowSeconds is the window W in whole seconds.
func (g *gcra) windowSeconds() int64 { return g.windowSec }

func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) == (b < 0) {
		q++
	}
	return q
}
