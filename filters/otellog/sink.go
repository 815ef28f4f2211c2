package otellog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/metrics"
)

var droppedTotal = promauto.With(metrics.Registry).NewCounter(prometheus.CounterOpts{
	Name: "sluice_otel_log_dropped_total",
	Help: "Access-log records dropped because the output could not keep up, or because they came after it was closed (a streamed response that outlived its configuration's drain).",
})

const (
	// closeTimeout bounds how long closing an output waits for it; closeMin is what it gets
	// even when the shutdown deadline has already passed.
	closeTimeout = 5 * time.Second
	closeMin     = 100 * time.Millisecond

	flushEvery = 200 * time.Millisecond
	// flushAt wakes the writer early once this much is pending.
	flushAt = 32 << 10
	// pendingMax bounds what waits for a slow output; past it records are dropped.
	pendingMax = 8 << 20
)

// sink takes whole lines from request goroutines into a buffer and writes them from one
// goroutine, so a request pays a copy under a mutex, not a write system call.
type sink struct {
	mu      sync.Mutex
	pending []byte
	records int          // in pending
	writing atomic.Int64 // records in the write under way
	dropped atomic.Uint64

	// closed says the writer goroutine has taken its last records: a record written after
	// that is dropped and counted (late), not left in pending for nobody.
	closed bool
	late   engine.LogLimit

	wake    chan struct{}
	done    chan struct{}
	closing sync.Once
	stopped chan struct{}
	log     *slog.Logger

	// Owned by the writer goroutine.
	out        io.Writer
	file       *os.File // nil for stdout/stderr
	path       string
	size       int64
	maxSize    int64
	maxBackups int
	hup        chan os.Signal
}

// newSink starts writing to w (stdout/stderr).
func newSink(w io.Writer, log *slog.Logger) *sink {
	s := &sink{out: w, log: log}
	s.start()
	return s
}

// openFileSink opens path for appending and starts writing to it.
func openFileSink(path string, maxSize int64, maxBackups int, log *slog.Logger) (*sink, error) {
	s := &sink{path: path, maxSize: maxSize, maxBackups: maxBackups, log: log}
	if err := s.open(); err != nil {
		return nil, err
	}
	// Reopen on SIGHUP: an external rotator (logrotate) renamed the file and wants us to let go.
	s.hup = make(chan os.Signal, 1)
	signal.Notify(s.hup, syscall.SIGHUP)
	s.start()
	return s, nil
}

// checkFile reports whether path could be opened, without creating it (for `sluice validate`).
func checkFile(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("log file folder: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("log file folder %s is not a directory", dir)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("log file %s is a directory", path)
	}
	return nil
}

func (s *sink) open() error {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("opening the log file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening the log file: %w", err)
	}
	s.file, s.out, s.size = f, f, st.Size()
	return nil
}

func (s *sink) start() {
	s.wake = make(chan struct{}, 1)
	s.done = make(chan struct{})
	s.stopped = make(chan struct{})
	go s.run()
}

// write queues one record (a complete line). It never blocks on the output.
func (s *sink) write(line []byte) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		droppedTotal.Inc()
		if ok, suppressed := s.late.Allow(time.Now(), 1); ok {
			s.log.Warn("access log record dropped: its output was closed (the request's configuration was replaced or the gateway stopped before its streamed response ended)",
				"suppressed", suppressed)
		}
		return
	}
	if len(s.pending)+len(line) > pendingMax {
		s.mu.Unlock()
		s.dropped.Add(1)
		droppedTotal.Inc()
		return
	}
	s.pending = append(s.pending, line...)
	s.records++
	n := len(s.pending)
	s.mu.Unlock()
	if n >= flushAt {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (s *sink) run() {
	defer close(s.stopped)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	var spare []byte
	var lastWarn time.Time
	for {
		var stop bool
		select {
		case <-s.wake:
		case <-tick.C:
		case <-s.hup:
			spare = s.flush(spare)
			s.reopen()
			continue
		case <-s.done:
			stop = true
			s.mu.Lock()
			s.closed = true // the flush below takes the last records
			s.mu.Unlock()
		}
		spare = s.flush(spare)
		if n := s.dropped.Swap(0); n > 0 {
			if time.Since(lastWarn) > 10*time.Second {
				s.log.Warn("access log output is too slow: records dropped", "dropped", n)
				lastWarn = time.Now()
			}
		}
		if stop {
			return
		}
	}
}

// flush writes what is pending; buffers alternate so writers never wait for the output.
func (s *sink) flush(spare []byte) []byte {
	s.mu.Lock()
	buf := s.pending
	s.pending = spare[:0]
	s.writing.Store(int64(s.records))
	s.records = 0
	s.mu.Unlock()
	if len(buf) == 0 {
		return buf
	}
	n, err := s.out.Write(buf)
	s.writing.Store(0)
	s.size += int64(n)
	if err != nil {
		s.log.Warn("writing the access log", "err", err)
	}
	if s.file != nil && s.maxSize > 0 && s.size >= s.maxSize {
		s.rotate()
	}
	if cap(buf) > 4*flushAt*8 {
		return nil // don't keep a buffer that grew large during a burst
	}
	return buf
}

func (s *sink) reopen() {
	if s.file == nil {
		return
	}
	old := s.file
	if err := s.open(); err != nil {
		s.log.Warn("reopening the access log; writing to the old file", "err", err)
		return
	}
	old.Close()
}

// rotate shifts FILE.(n-1) to FILE.n … FILE to FILE.1, dropping what exceeds max_backups, and
// opens a fresh FILE.
func (s *sink) rotate() {
	if s.maxBackups == 0 {
		if err := s.file.Truncate(0); err != nil {
			s.log.Warn("truncating the access log", "err", err)
		}
		s.size = 0
		return
	}
	os.Remove(fmt.Sprintf("%s.%d", s.path, s.maxBackups))
	for i := s.maxBackups - 1; i >= 1; i-- {
		err := os.Rename(fmt.Sprintf("%s.%d", s.path, i), fmt.Sprintf("%s.%d", s.path, i+1))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("rotating the access log", "err", err)
		}
	}
	if err := os.Rename(s.path, s.path+".1"); err != nil {
		s.log.Warn("rotating the access log", "err", err)
	}
	s.reopen()
}

// Close writes what is pending and closes the file, within closeTimeout. Later calls do nothing.
func (s *sink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return s.CloseContext(ctx)
}

// CloseContext writes what is pending and closes the file, waiting for the output until ctx ends
// (the shutdown deadline) and at most closeTimeout, but at least closeMin. An output that does
// not take the records by then (stdout into a pipe nobody reads) is abandoned: the records
// still pending are counted as dropped and logged.
func (s *sink) CloseContext(ctx context.Context) error {
	var err error
	s.closing.Do(func() {
		close(s.done)
		wait := closeTimeout
		if dl, ok := ctx.Deadline(); ok {
			wait = min(max(time.Until(dl), closeMin), closeTimeout)
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-s.stopped:
		case <-t.C:
			s.mu.Lock()
			lost := s.records + int(s.writing.Load())
			s.closed = true // later records are counted as they come, not left pending
			s.pending, s.records = s.pending[:0], 0
			s.mu.Unlock()
			s.dropped.Add(uint64(lost))
			droppedTotal.Add(float64(lost))
			s.log.Warn("access log output blocked at shutdown: records lost", "lost", lost, "waited", wait.String())
			return // the writer stays blocked in its write; the process is ending
		}
		if s.hup != nil {
			signal.Stop(s.hup)
		}
		if s.file != nil {
			err = s.file.Close()
		}
	})
	return err
}
