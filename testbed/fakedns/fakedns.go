// Package fakedns is a DNS server for tests and demos that resolves every name to 127.0.0.1:
// Pebble's -dnsserver pointed at it validates any name against this machine.
package fakedns

import (
	"context"
	"net"
	"time"

	"github.com/miekg/dns"
)

// Serve answers every A question with 127.0.0.1 (and AAAA with no address), over UDP and TCP
// on addr ("127.0.0.1:0" picks a port): a resolver for Pebble's -dnsserver that sends the
// validation of any name to this machine. It returns the address and a func that stops it.
func Serve(addr string) (string, func(), error) {
	tl, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	pc, err := net.ListenPacket("udp", tl.Addr().String())
	if err != nil {
		tl.Close()
		return "", nil, err
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		for _, qu := range q.Question {
			if qu.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: qu.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1)})
			}
		}
		_ = w.WriteMsg(m)
	})
	servers := []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: tl, Handler: h}}
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
	}
	stop := func() {
		for _, srv := range servers {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = srv.ShutdownContext(ctx)
			cancel()
		}
	}
	return tl.Addr().String(), stop, nil
}
