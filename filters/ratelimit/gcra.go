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
	tolerance int64 // tau = burst*T: how far ahead of now TAT may run and still admit
	window    int64 // W: the period rounded up to whole seconds, the window the headers report
	second    int64 // one second in this unit
	windowSec int64 // W in seconds
}

func newGCRA(limit int, period time.Duration, burst int, unit time.Duration) gcra {
	p := int64(period)
	u := int64(unit)
	// Rounding T up (never down) keeps the guarantee: limit intervals of T never fit in less
	// than one period, so no window of length period can hold limit+1 admissions.
	t := ceilDiv(p, int64(limit)*u)
	return gcra{
		interval:  t,
		tolerance: int64(burst) * t,
		window:    ceilDiv(p, int64(time.Second)) * (int64(time.Second) / u),
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

// remaining is the RateLimit "r" value after an admitted request: how many more requests the key
// can make within the next window (the "t" value), however they are spaced. ahead is TAT - now
// after the decision.
func (g *gcra) remaining(ahead int64) int64 {
	if ahead < 0 {
		ahead = 0
	}
	// Request k (k = 0, 1, …) conforms from now + ahead + k*T - tau on; count those that start
	// before now + W.
	n := g.window + g.tolerance - ahead
	if n <= 0 {
		return 0
	}
	return ceilDiv(n, g.interval)
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
