package main

import (
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// sdNotify sends a state to the service manager (systemd's sd_notify protocol): a datagram to the
// Unix socket named by $NOTIFY_SOCKET ("@name" is an abstract socket). Without the variable (not
// started by systemd with Type=notify) it does nothing. A failure is returned for the log: the
// gateway serves either way.
//
// States sent: READY=1 once every listener and the admin API are bound and serving;
// RELOADING=1 (with MONOTONIC_USEC, as Type=notify-reload requires) when a reload starts and
// READY=1 when it ends, whatever its outcome; STOPPING=1 when shutdown starts.
func sdNotify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// sdReloading is the RELOADING=1 state with the CLOCK_MONOTONIC time systemd expects with it.
func sdReloading() string {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return "RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(ts.Nano()/int64(time.Microsecond), 10)
}
