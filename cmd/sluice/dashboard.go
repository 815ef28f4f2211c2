package main

import (
	"net"
	"strconv"
	"time"
)

// processStart is when this process started: the dashboard's uptime counts from it, across
// reloads and admin API moves.
var processStart = time.Now()

// dashboardURL is the address of the dashboard on the admin listener a: an unspecified address
// (0.0.0.0, ::) is shown as loopback, where a browser on this machine reaches it.
func dashboardURL(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return "http://" + a.String() + "/ui/"
	}
	host := ta.IP
	if host.IsUnspecified() {
		host = net.IPv4(127, 0, 0, 1)
		if ta.IP.To4() == nil {
			host = net.IPv6loopback
		}
	}
	return "http://" + net.JoinHostPort(host.String(), strconv.Itoa(ta.Port)) + "/ui/"
}
