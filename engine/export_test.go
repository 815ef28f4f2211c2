package engine

import "time"

// IdleConns counts s's connections that are idle (waiting for a request's first byte), as the
// eviction of conns.go sees them.
func IdleConns(s *Server) int {
	n := 0
	s.limitsMu.Lock()
	defer s.limitsMu.Unlock()
	for _, l := range s.limits {
		if w := l.watch; w != nil {
			w.mu.Lock()
			for c := range w.conns {
				if _, ok := w.idleSince(c); ok {
					n++
				}
			}
			w.mu.Unlock()
		}
	}
	return n
}

// MaxConnsFromOneAddr is the most connections one address (key) holds on s now.
func MaxConnsFromOneAddr(s *Server) int {
	n := 0
	s.limitsMu.Lock()
	defer s.limitsMu.Unlock()
	for _, l := range s.limits {
		l.mu.Lock()
		for _, k := range l.byAddr {
			n = max(n, int(k))
		}
		l.mu.Unlock()
	}
	return n
}

// RaceEnabled reports a race-detector build, whose shadow memory makes RSS bounds meaningless.
const RaceEnabled = raceEnabled

// SetACMERenewCheckInterval makes certmagic look for certificates due for renewal every d (the
// Pebble test's certificates live for seconds); it returns a func restoring the default.
func SetACMERenewCheckInterval(d time.Duration) func() {
	old := acmeRenewCheckInterval
	acmeRenewCheckInterval = d
	return func() { acmeRenewCheckInterval = old }
}

// SetCertPoll sets how often servers look at their certificate files; the returned function
// restores the previous interval.
func SetCertPoll(d time.Duration) func() {
	old := certPoll
	certPoll = d
	return func() { certPoll = old }
}

// SetIdleParkAfter sets how long a connection stays idle before it parks (idlepark.go), for
// servers guarded from now on; the returned func puts the default back.
func SetIdleParkAfter(d time.Duration) func() {
	parkAfterTest.Store(int64(d))
	return func() { parkAfterTest.Store(0) }
}

// ParkedConns counts s's parked connections.
func ParkedConns(s *Server) int {
	n := 0
	s.limitsMu.Lock()
	defer s.limitsMu.Unlock()
	for _, w := range s.parking {
		w.mu.Lock()
		for c := range w.conns {
			if c.park.Load() == parkWaiting {
				n++
			}
		}
		w.mu.Unlock()
	}
	return n
}
