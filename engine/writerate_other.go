//go:build !linux

package engine

// tcpProgress needs Linux's TCP_INFO and SIOCOUTQ; elsewhere the minimum write rate is not
// measured (the write timeouts still apply).
func tcpProgress(*clientConn) (acked uint64, queued int64, ok bool) { return 0, 0, false }
