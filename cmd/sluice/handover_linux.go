package main

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// checkPeer refuses a handover to a process of another user (the socket's mode already does;
// this holds also where the directory or mode is looser than expected).
func checkPeer(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("peer credentials: %w", cerr)
	}
	if int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("process %d of user %d is not this gateway's user %d", cred.Pid, cred.Uid, os.Getuid())
	}
	return nil
}
