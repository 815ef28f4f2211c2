package cache

import (
	"strconv"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/ascii"
	"github.com/valyala/fasthttp"
)

// answerFromPrev handles the upstream's answer to a request that found only a stale variant
// (st.prev): a 304 to the validators this filter added refreshes the variant and the client
// gets it whole (X-Cache: REVALIDATED); a server error within the variant's stale-if-error
// window is replaced by the stale variant (X-Cache: STALE, RFC 5861). It reports whether it
// wrote the response; anything else is left to the normal store path.
func (f *Filter) answerFromPrev(c *engine.Ctx, st *reqState) bool {
	status := c.Response.StatusCode()
	now := f.now()
	switch {
	case status == fasthttp.StatusNotModified && st.validated:
		tmp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(tmp)
		merge304(tmp, st.prev, c.Response)
		if e := f.entryFor(tmp, &c.Request.Header, st.authorized, now); e != nil {
			f.store.insert(st.hash, c.Request.Header.Host(), c.Request.Header.RequestURI(), e)
			f.metrics.stored.Inc()
			f.updateBytes()
		}
		tmp.CopyTo(c.Response)
		setAge(c.Response, 0)
		st.result = resRevalidated
		return true
	case status >= 500 && status <= 504 && status != fasthttp.StatusNotImplemented:
		e := st.prev
		age := e.age(now)
		if e.mustReval || age >= e.lifetime+e.sie {
			return false
		}
		// The client gets the stale copy instead of the error; the error stays in the logs.
		writeEntry(c.Response, e)
		setAge(c.Response, age)
		st.result = resStale
		f.metrics.stale.Inc()
		return true
	}
	return false
}

// merge304 builds in dst the stored response e updated with the header fields of a 304
// (RFC 9111 §4.3.4): fields the 304 carries replace the stored ones, the others stay.
func merge304(dst *fasthttp.Response, e *entry, r304 *fasthttp.Response) {
	dst.Header.SetNoDefaultContentType(true)
	dst.SetStatusCode(e.status)
	var updated [][]byte
	for k := range r304.Header.All() {
		if !isContentHeader(k) && !skipStored(k) || ascii.EqualFoldLower(k, "date") {
			updated = append(updated, k)
		}
	}
	for i := range e.headers {
		kv := &e.headers[i]
		if !containsFold(updated, kv.k) {
			dst.Header.AddBytesKV(kv.k, kv.v)
		}
	}
	for k, v := range r304.Header.All() {
		if containsFold(updated, k) {
			dst.Header.AddBytesKV(k, v)
		}
	}
	dst.SetBodyRaw(e.body) // entryFor copies it; dst is released right after
}

func containsFold(list [][]byte, k []byte) bool {
	for _, x := range list {
		if ascii.EqualFold(x, k) {
			return true
		}
	}
	return false
}

// writeEntry replaces resp with the stored response e.
func writeEntry(resp *fasthttp.Response, e *entry) {
	resp.Header.Reset()
	resp.Header.SetNoDefaultContentType(true) // as engine.Server runs
	resp.SetStatusCode(e.status)
	for i := range e.headers {
		resp.Header.AddBytesKV(e.headers[i].k, e.headers[i].v)
	}
	resp.SetBody(e.body)
}

func setAge(resp *fasthttp.Response, age time.Duration) {
	var buf [20]byte
	resp.Header.SetBytesV(hdrAge, strconv.AppendInt(buf[:0], int64(age/time.Second), 10))
}
