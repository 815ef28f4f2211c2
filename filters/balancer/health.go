package balancer

import (
	"errors"
	"time"

	"github.com/valyala/fasthttp"
)

// healthLoop probes every target each interval, starting at once. A target whose previous probe
// is still running (it hangs until its timeout) is skipped, so probes never pile up.
func (u *Upstream) healthLoop(hc *HealthCheckConfig) {
	defer u.wg.Done()
	tk := time.NewTicker(hc.Interval.D())
	defer tk.Stop()
	for {
		for _, t := range u.set.Load().targets {
			if t.probing.CompareAndSwap(false, true) {
				u.wg.Add(1)
				go u.probe(t, hc)
			}
		}
		select {
		case <-u.stop:
			return
		case <-tk.C:
		}
	}
}

// probe sends one health check to t and moves its health after healthy_threshold successes or
// unhealthy_threshold failures in a row.
func (u *Upstream) probe(t *target, hc *HealthCheckConfig) {
	defer u.wg.Done()
	defer t.probing.Store(false)
	var (
		err     error // the probe's own failure (nil: the target answered)
		ok      bool
		status  int
		verdict error // why a target that answered fails the check
	)
	switch {
	case hc.Type == healthGRPC:
		verdict = probeGRPC(t, hc) // health_grpc.go
		ok = verdict == nil
		if !errors.As(verdict, new(*grpcReplyError)) {
			err, verdict = verdict, nil
		}
	case t.h2 != nil:
		status, err = t.h2.probe(t, hc) // over the target's own protocol
		ok = err == nil && expected(hc.ExpectStatus, status)
	default:
		status, err = probeHTTP1(t, hc)
		ok = err == nil && expected(hc.ExpectStatus, status)
	}
	select {
	case <-u.stop:
		return // the upstream is closing: the verdict no longer matters
	default:
	}
	st := t.st
	if err == nil {
		st.noteConnect(true, time.Now().UnixNano())
	}
	if ok {
		st.probeFail.Store(0)
		if n := st.probeOK.Add(1); !st.healthy.Load() && int(n) >= hc.HealthyThreshold {
			// Back with a clean slate: the latency penalties of its failures would keep
			// p2c_ewma away from it for a long while.
			st.resetLatency()
			st.healthy.Store(true)
			u.log.Info("target healthy again", "target", t.addr)
		}
		return
	}
	st.probeOK.Store(0)
	if n := st.probeFail.Add(1); st.healthy.Load() && int(n) >= hc.UnhealthyThreshold {
		st.healthy.Store(false)
		// Its pooled connections are likely dead (a crashed process): don't let them fail
		// the first requests once it is back.
		t.closeIdle()
		if verdict != nil {
			u.log.Warn("target unhealthy", "target", t.addr, "check", verdict.Error())
			return
		}
		u.log.Warn("target unhealthy", "target", t.addr, "status", status, "err", err)
	}
}

// probeHTTP1 sends one health check over the target's HTTP/1.1 probe client.
func probeHTTP1(t *target, hc *HealthCheckConfig) (int, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	scheme := "http://"
	if t.tls {
		scheme = "https://"
	}
	req.SetRequestURI(scheme + t.addr + hc.Path)
	req.Header.SetHost(hostHeader(t))
	req.Header.Set("User-Agent", "sluice-health-check")
	if err := t.probe.DoTimeout(req, resp, hc.Timeout.D()); err != nil {
		return 0, err
	}
	return resp.StatusCode(), nil
}

// hostHeader is the Host a probe sends: the configured host name and port.
func hostHeader(t *target) string { return t.name }

func expected(list []int, status int) bool {
	for _, s := range list {
		if s == status {
			return true
		}
	}
	return false
}
