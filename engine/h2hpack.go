package engine

import (
	"errors"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The engine's HTTP/2 server decodes header blocks itself rather than through the Framer's
// ReadMetaHeaders: that one builds a MetaHeadersFrame, a new emit closure with its captured
// state and a field slice grown from nothing for every block (about seven allocations per
// request, RATIONALE.md). Here the decoder, its emit function and the field slice belong to the
// connection and are reused. The checks are the Framer's own: field values and names valid
// (names in lower case), pseudo-header fields first, known, not repeated and not mixed with
// :status, the header list bounded by max_header_bytes (past it the list is Truncated and the
// stream answered 431), and a block that runs on far past the bound, or continues after an
// invalid field, fails the connection (CONTINUATION floods).

var (
	errH2PseudoAfterRegular = errors.New("pseudo header field after regular")
	errH2FieldValue         = errors.New("invalid header field value")
	errH2FieldName          = errors.New("invalid header field name")
	errH2Pseudo             = errors.New("invalid or duplicate pseudo header field")
)

// h2headerBlock is one decoded header block: a HEADERS frame with its CONTINUATIONs. The
// reading goroutine owns it; fields is reused by the next block (the strings are the decoder's
// own, so they may be kept).
type h2headerBlock struct {
	id        uint32
	ended     bool // END_STREAM
	priority  http2.PriorityParam
	hasPrio   bool
	truncated bool // past max_header_bytes: the rest was dropped
	fields    []hpack.HeaderField
	npseudo   int // fields[:npseudo] are the pseudo-header fields

	// decoding state
	sawRegular bool
	invalid    error
	remain     uint32 // of the header list's bound
	remainTr   uint32 // of the bound for "trailer" fields, kept apart as net/http's Framer does
}

// PseudoFields are the block's pseudo-header fields.
func (b *h2headerBlock) PseudoFields() []hpack.HeaderField { return b.fields[:b.npseudo] }

// RegularFields are the block's other fields.
func (b *h2headerBlock) RegularFields() []hpack.HeaderField { return b.fields[b.npseudo:] }

// h2MaxHeaderList is the header list bound the connection enforces (the Framer's default when
// max_header_bytes is unset).
func (c *h2conn) h2MaxHeaderList() uint32 {
	if n := c.s.cfg.MaxHeaderBytes; n > 0 && int64(n) < 1<<32 {
		return uint32(n)
	}
	return 16 << 20
}

// emit is the connection's HPACK decoder's emit function: one field of the block being read.
func (c *h2conn) emit(hf hpack.HeaderField) {
	b := &c.hb
	if !httpguts.ValidHeaderFieldValue(hf.Value) {
		b.invalid = errH2FieldValue
	}
	if strings.HasPrefix(hf.Name, ":") {
		if b.sawRegular {
			b.invalid = errH2PseudoAfterRegular
		}
	} else {
		b.sawRegular = true
		if !h2ValidWireName(hf.Name) {
			b.invalid = errH2FieldName
		}
	}
	if b.invalid != nil {
		c.hdec.SetEmitEnabled(false)
		return
	}
	remain, size := &b.remain, hf.Size()
	if hf.Name == "trailer" {
		remain = &b.remainTr
		n := strings.Count(hf.Value, ",") + 1
		size = uint32(len(hf.Value)-n+1) + uint32(n)*hpack.HeaderField{}.Size()
	}
	if size > *remain {
		c.hdec.SetEmitEnabled(false)
		b.truncated = true
		b.remain, b.remainTr = 0, 0
		return
	}
	*remain -= size
	if !b.sawRegular {
		b.npseudo++
	}
	b.fields = append(b.fields, hf)
}

// h2ValidWireName reports a field name HTTP/2 allows on the wire: a token, in lower case.
func h2ValidWireName(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		ch := v[i]
		if !httpguts.IsTokenRune(rune(ch)) || 'A' <= ch && ch <= 'Z' {
			return false
		}
	}
	return true
}

// readHeaderBlock decodes the block f starts into c.hb, reading its CONTINUATION frames. A
// connection error (a flood, a compression error) fails the connection; a StreamError resets
// the stream (malformed fields).
func (c *h2conn) readHeaderBlock(f *http2.HeadersFrame) error {
	b := &c.hb
	max := c.h2MaxHeaderList()
	*b = h2headerBlock{id: f.StreamID, ended: f.StreamEnded(), priority: f.Priority, hasPrio: f.HasPriority(),
		fields: b.fields[:0], remain: max, remainTr: max}
	c.hdec.SetEmitEnabled(true)
	frag, endHeaders := f.HeaderBlockFragment(), f.HeadersEnded()
	for {
		// A fragment far larger than the list may still be is not decoded (x/net's rule: twice
		// what is left of both bounds; nothing once the list is past them).
		if int64(len(frag)) > 2*int64(b.remain+b.remainTr) {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if b.invalid != nil {
			return http2.ConnectionError(http2.ErrCodeProtocol) // a CONTINUATION after an invalid field
		}
		if _, err := c.hdec.Write(frag); err != nil {
			return http2.ConnectionError(http2.ErrCodeCompression)
		}
		if endHeaders {
			break
		}
		next, err := c.rfr.ReadFrame()
		if err != nil {
			return err
		}
		cf := next.(*http2.ContinuationFrame) // the Framer checks the frame order
		frag, endHeaders = cf.HeaderBlockFragment(), cf.HeadersEnded()
	}
	if err := c.hdec.Close(); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	if b.invalid != nil {
		return http2.StreamError{StreamID: b.id, Code: http2.ErrCodeProtocol, Cause: b.invalid}
	}
	if err := b.checkPseudo(); err != nil {
		return http2.StreamError{StreamID: b.id, Code: http2.ErrCodeProtocol, Cause: err}
	}
	return nil
}

// checkPseudo refuses unknown and repeated pseudo-header fields, and request ones mixed with
// :status.
func (b *h2headerBlock) checkPseudo() error {
	var request, response bool
	pf := b.PseudoFields()
	for i, hf := range pf {
		switch hf.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
			request = true
		case ":status":
			response = true
		default:
			return errH2Pseudo
		}
		for _, prev := range pf[:i] {
			if hf.Name == prev.Name {
				return errH2Pseudo
			}
		}
	}
	if request && response {
		return errH2Pseudo
	}
	return nil
}
