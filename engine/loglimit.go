package engine

import (
	"sync"
	"time"
)

// LogLimit bounds a kind of log line that the requests of one client can cause by the thousand
// (a refusal, a response streamed because a budget is used up): at most a given number of lines
// in each one-second window, the first line after a full window saying how many were left out.
// The zero LogLimit is ready; it is safe for concurrent use.
type LogLimit struct {
	mu         sync.Mutex
	start      time.Time
	logged     int
	suppressed int
}

// Allow reports whether a line may be written at now, perSecond lines being allowed in a
// window, and how many lines were left out before it (for a "suppressed" attribute); a refusal
// counts as one more left out.
func (l *LogLimit) Allow(now time.Time, perSecond int) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= time.Second {
		l.start, l.logged = now, 0
	}
	if l.logged >= perSecond {
		l.suppressed++
		return false, 0
	}
	l.logged++
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}
