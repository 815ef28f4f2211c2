package engine

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// tcpProgress returns the bytes the peer has acknowledged on c's socket and the bytes still
// queued for it (sent but unacknowledged, or not yet sent).
func tcpProgress(c *clientConn) (acked uint64, queued int64, ok bool) {
	sc, isSock := c.Conn.(syscall.Conn)
	if !isSock {
		return 0, 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, 0, false
	}
	var ierr error
	err = rc.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		if info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); ierr != nil {
			return
		}
		acked = info.Bytes_acked
		var q int
		q, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
		queued = int64(q)
	})
	return acked, queued, err == nil && ierr == nil
}
