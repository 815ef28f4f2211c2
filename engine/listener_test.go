package engine

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
)

// flakyListener fails Accept with the given errors first, then accepts from the real listener.
type flakyListener struct {
	net.Listener
	errs []error
}

func (f *flakyListener) Accept() (net.Conn, error) {
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return f.Listener.Accept()
}

func TestResilientListenerRetriesExhaustion(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	ln := &resilientListener{
		Listener: &flakyListener{Listener: inner, errs: []error{emfile, emfile, &net.OpError{Op: "accept", Err: syscall.ECONNABORTED}}},
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	go func() {
		if c, err := net.Dial("tcp", inner.Addr().String()); err == nil {
			defer c.Close()
			_, _ = c.Write([]byte("x"))
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("Accept after EMFILE: %v, want a connection", err)
	}
	c.Close()

	// A closed listener's error still ends Serve.
	inner.Close()
	if _, err := ln.Accept(); err == nil || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a closed listener: %v, want net.ErrClosed", err)
	}
}
