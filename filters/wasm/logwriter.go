package wasm

import (
	"context"
	"log/slog"
)

// maxLogLine bounds a line kept while waiting for its newline; a longer one is logged in pieces.
const maxLogLine = 4 << 10

// logWriter receives a guest's WASI stdout or stderr and logs each line (stdout at info, stderr
// at warn) with the filter's name. Each instance has its own, used by one call at a time.
type logWriter struct {
	f      *Filter
	stream string
	buf    []byte
	// starting, while the guest starts, also keeps what it writes (stderr only).
	starting *startOutput
}

func (w *logWriter) Write(p []byte) (int, error) {
	n := len(p)
	if w.starting != nil {
		w.starting.write(p)
	}
	for len(p) > 0 {
		i := 0
		for i < len(p) && p[i] != '\n' {
			i++
		}
		if i == len(p) {
			w.buf = append(w.buf, p...)
			if len(w.buf) >= maxLogLine {
				w.flush()
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.emit() // a blank line too: guests print them to separate output
		p = p[i+1:]
	}
	return n, nil
}

// flush logs what is buffered, if anything.
func (w *logWriter) flush() {
	if len(w.buf) > 0 {
		w.emit()
	}
}

// emit logs the buffered line, even an empty one.
func (w *logWriter) emit() {
	if !w.f.lim.guestLog.allow() {
		w.buf = w.buf[:0]
		return
	}
	lvl := slog.LevelInfo
	if w.stream == "stderr" {
		lvl = slog.LevelWarn
	}
	w.f.log.Log(context.Background(), lvl, string(w.buf), "source", "guest", "stream", w.stream)
	w.buf = w.buf[:0]
}
