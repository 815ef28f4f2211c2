package engine

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// ErrAddressInUse is returned by Server.Listen when another socket listens on the server's
// address and Takeover is not set.
var ErrAddressInUse = errors.New("the address is in use")

// checkAddressFree fails when a socket listens on addr. It listens there without SO_REUSEPORT and
// closes again at once: Linux refuses that bind while any socket is bound to the address, also
// one with SO_REUSEPORT, as every gateway's listener has. (The address keeps Go's SO_REUSEADDR,
// so connections in TIME_WAIT from an earlier process do not count.) A client that connects in
// the instant the probe listens is reset, as it would have been refused without it. Two gateways
// started in the same instant may both pass; the check is for the mistake, not for the race.
func checkAddressFree(addr string) error {
	if _, port, err := net.SplitHostPort(addr); err == nil && port == "0" {
		return nil // a port of the kernel's choice is never in use
	}
	probe, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("listening on %s: %w by another process (another gateway?): %w", addr, ErrAddressInUse, err)
		}
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	return probe.Close()
}
