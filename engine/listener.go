package engine

import (
	"errors"
	"log/slog"
	"net"
	"syscall"
	"time"
)

// resilientListener keeps accepting through resource exhaustion. fasthttp treats every accept
// error but a timeout as permanent and stops serving, so running out of file descriptors
// (EMFILE) for a moment would take the whole gateway down. Here such errors back off and retry
// (connections keep queueing in the kernel's backlog meanwhile), logged at most once a second.
type resilientListener struct {
	net.Listener
	log     *slog.Logger
	lastLog time.Time
}

// maxAcceptBackoff caps the wait between retries while descriptors are exhausted.
const maxAcceptBackoff = time.Second

func (l *resilientListener) Accept() (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err == nil || !retryableAccept(err) {
			return c, err
		}
		if now := time.Now(); now.Sub(l.lastLog) >= time.Second {
			l.lastLog = now
			l.log.Warn("cannot accept a connection; retrying (raise the open-file limit?)", "err", err)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, maxAcceptBackoff)
	}
}

// retryableAccept reports accept errors that pass: out of descriptors or memory, or a connection
// the peer aborted before it was accepted.
func retryableAccept(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EPROTO} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
