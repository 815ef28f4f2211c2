package cache

import (
	"fmt"
	"net"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
)

// maxBackground bounds the background revalidations running at once per cache filter; past it
// a stale entry is still served and a later request starts the refresh.
const maxBackground = 32

// conditionalHeaders are removed from a background refresh: it must fetch the full response,
// not answer one client's conditional or range request.
var conditionalHeaders = []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since",
	"If-Range", "Range", "Cache-Control", "Pragma"}

// revalidate refreshes the URL keyed h in the background, unless a fetch for it is already
// running (stale-while-revalidate, RFC 5861). The refresh is a subrequest through the stages
// after this filter and the balancer, built from a copy of c's request, so it outlives c.
func (f *Filter) revalidate(c *engine.Ctx, h uint64, now time.Time, stale *entry) {
	if f.validating || c.Pipeline == nil {
		return
	}
	select {
	case <-f.closed:
		return
	default:
	}
	fl, leader := f.store.join(h, now, f.coalesce)
	if !leader {
		return
	}
	select {
	case f.bgSem <- struct{}{}:
	default:
		f.store.release(h, fl)
		return
	}
	fc := new(fasthttp.RequestCtx)
	var addr net.Addr // nil: Init uses a zero address
	if c.Fast != nil {
		addr = c.Fast.RemoteAddr()
	}
	fc.Init(c.Request, addr, nil)
	bg := engine.AcquireCtx(fc)
	bg.Request.Header.SetMethod(fasthttp.MethodGet)
	for _, k := range conditionalHeaders {
		bg.Request.Header.Del(k)
	}
	validated := addValidators(&bg.Request.Header, stale)
	bg.Path = append(bg.Path[:0], c.Path...)
	bg.ClientAddr = c.ClientAddr
	bg.Start = now
	authorized := len(bg.Request.Header.Peek(hdrAuth)) > 0
	p := c.Pipeline
	f.bg.Add(1)
	go func() {
		defer func() {
			if r := recover(); r != nil && f.log != nil {
				f.log.Error("cache revalidation panicked", "panic", fmt.Sprint(r))
			}
			f.store.release(h, fl)
			<-f.bgSem
			engine.ReleaseCtx(bg)
			f.bg.Done()
		}()
		p.ServeAfter(bg, f)
		resp := bg.Response
		if validated && resp.StatusCode() == fasthttp.StatusNotModified {
			// Still good: the stored body with the 304's fresh headers.
			resp = fasthttp.AcquireResponse()
			defer fasthttp.ReleaseResponse(resp)
			merge304(resp, stale, bg.Response)
		}
		if e := f.entryFor(resp, &bg.Request.Header, authorized, f.now()); e != nil {
			f.store.insert(h, bg.Request.Header.Host(), bg.Request.Header.RequestURI(), e)
			f.metrics.stored.Inc()
			f.updateBytes()
		} else if bg.Failure != nil && f.log != nil {
			f.log.Warn("cache revalidation failed", "err", bg.Failure)
		}
	}()
}
