package wasm

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/tetratelabs/wazero/api"
)

// startOutputLimit bounds what a failed start's error quotes of the guest's own words.
const startOutputLimit = 1 << 10

// startOutput collects what a guest says while it starts (instantiation and its start
// functions, where Go guests run init and SDK guests read their configuration): its stderr and
// the messages it logs at warn or error through the ABI's log function. A start that fails
// quotes it, so the diagnostic `sluice validate` and `sluice run` print carries the guest's
// message ("panic: apikey: config: …", "config: unknown key \"heder\"") and not only
// "wasm error: unreachable". Only the first and last startOutputLimit/2 bytes are kept: a Go
// panic states its message first and its stack after it; a guest that logs a lot says why it
// stopped last.
type startOutput struct {
	head, tail []byte
	dropped    int
}

func (o *startOutput) write(p []byte) {
	const half = startOutputLimit / 2
	if n := min(half-len(o.head), len(p)); n > 0 {
		o.head = append(o.head, p[:n]...)
		p = p[n:]
	}
	if len(p) >= half {
		o.dropped += len(o.tail) + len(p) - half
		o.tail = append(o.tail[:0], p[len(p)-half:]...)
		return
	}
	o.tail = append(o.tail, p...)
	// The tail may grow to twice what is kept before it is cut back, so a guest writing a byte at
	// a time costs a copy of half a kilobyte per half a kilobyte written, not per byte.
	if len(o.tail) > 2*half {
		o.trim()
	}
}

// trim cuts the tail back to the last startOutputLimit/2 bytes.
func (o *startOutput) trim() {
	if over := len(o.tail) - startOutputLimit/2; over > 0 {
		o.dropped += over
		o.tail = append(o.tail[:0], o.tail[over:]...)
	}
}

// logged records a message of the ABI's log function.
func (o *startOutput) logged(mod api.Module, lvl slog.Level, msg, msgLen uint32) {
	if lvl < slog.LevelWarn {
		return
	}
	if b, ok := mod.Memory().Read(msg, msgLen); ok {
		o.write(b)
		if len(b) == 0 || b[len(b)-1] != '\n' {
			o.write([]byte{'\n'})
		}
	}
}

// text is what was kept, trimmed, with a marker where bytes were dropped.
func (o *startOutput) text() string {
	o.trim()
	s := string(o.head)
	if o.dropped > 0 {
		s += fmt.Sprintf("\n[… %d bytes …]\n", o.dropped)
	}
	return strings.TrimSpace(s + string(o.tail))
}

// wrap adds the guest's words to a start failure, if it said anything.
func (o *startOutput) wrap(err error) error {
	if t := o.text(); t != "" {
		return &guestSaidError{err: err, said: t}
	}
	return err
}

// guestSaidError is a start failure with what the guest wrote before it.
type guestSaidError struct {
	err  error
	said string
}

func (e *guestSaidError) Error() string {
	return fmt.Sprintf("%v\nthe guest wrote (stderr and warn/error log messages, at most %d bytes):\n%s", e.err, startOutputLimit, e.said)
}

func (e *guestSaidError) Unwrap() error { return e.err }
