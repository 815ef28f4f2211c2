package engine

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// CheckListenAddress checks a listen address as `sluice run` will use it: "host:port" with a
// numeric port from 0 to 65535 and a host that is empty (every interface), an IP literal or a
// name.
func CheckListenAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port, such as \"127.0.0.1:8080\" or \":8080\": %w", addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && !validHostName(host) {
			return fmt.Errorf("%q: %q is neither an IP address nor a host name", addr, host)
		}
	}
	return nil
}

func validHostName(h string) bool {
	if len(h) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
			continue
		case c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		default:
			return false
		}
		label++
	}
	return true // a trailing dot (an absolute name) is fine
}

// isLoopbackHost reports whether host, from a listen address, only ever accepts connections from
// this machine: "localhost" or a loopback IP. A name other than localhost is not trusted to be
// loopback, whatever it resolves to today.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// AdminExposed reports whether the admin block serves the admin API beyond this machine without
// a token (allowed only with allow_insecure = true).
func (a *AdminConfig) AdminExposed() bool {
	if a.Listen == "" || a.Token != "" {
		return false
	}
	host, _, err := net.SplitHostPort(a.Listen)
	return err == nil && !isLoopbackHost(host)
}

// Validate checks the admin block. The admin API can reload the configuration and shows it: on
// an address other machines can reach it needs a token, or an explicit allow_insecure = true.
func (a *AdminConfig) Validate() error {
	if a.Listen == "" {
		return nil // off
	}
	if err := CheckListenAddress(a.Listen); err != nil {
		return &FieldError{Field: "listen", Err: err}
	}
	if a.AdminExposed() && !a.AllowInsecure {
		return FieldErr("listen", "%s is not a loopback address: the admin API (POST /reload, /config) would be open to the network without a token; "+
			"set token (with env(\"NAME\") to keep it out of the file), listen on 127.0.0.1, or set allow_insecure = true to accept the risk", a.Listen)
	}
	return nil
}

var errSameAddress = errors.New("the admin API and the server cannot listen on the same address")

// CheckAdminAddress reports an admin listen address that collides with the server's: the same
// port on the same host, or on every interface for either.
func CheckAdminAddress(server, admin string) error {
	if admin == "" {
		return nil
	}
	sh, sp, err1 := net.SplitHostPort(server)
	ah, ap, err2 := net.SplitHostPort(admin)
	if err1 != nil || err2 != nil || sp != ap || sp == "0" {
		return nil
	}
	any := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	if sh == ah || any(sh) || any(ah) {
		return fmt.Errorf("%w: both use %s (server %q, admin %q)", errSameAddress, net.JoinHostPort(ah, ap), server, admin)
	}
	return nil
}
