package grpcweb

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/valyala/fasthttp"
)

// trailerFlag marks a gRPC-Web frame that carries the trailers instead of a message.
const trailerFlag = 0x80

// appendTrailerFrame appends to dst the trailer frame of h's trailer fields (the values of the
// names announced in h.Trailers()): flag 0x80, a 4-byte big-endian length, then one
// "name: value\r\n" line per value, names in lower case as HTTP/2 sends them. It reports
// false, appending nothing, when h holds no trailer value.
func appendTrailerFrame(dst []byte, h *fasthttp.ResponseHeader) ([]byte, bool) {
	sec := h.TrailerHeader() // "Name: value\r\n" per value, then "\r\n"
	sec = sec[:len(sec)-2]
	if len(sec) == 0 {
		return dst, false
	}
	start := len(dst)
	dst = append(dst, trailerFlag, 0, 0, 0, 0)
	for len(sec) > 0 {
		end := bytes.IndexByte(sec, '\n') + 1
		if end == 0 {
			end = len(sec)
		}
		line := sec[:end]
		colon := bytes.IndexByte(line, ':')
		for _, b := range line[:colon+1] {
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			dst = append(dst, b)
		}
		dst = append(dst, line[colon+1:]...)
		sec = sec[end:]
	}
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-5))
	return dst, true
}

// dropTrailers removes h's trailer fields and their announcement, once they went into the body.
func dropTrailers(h *fasthttp.ResponseHeader) {
	for name := range h.Trailers() {
		h.DelBytes(name)
	}
	h.Del(fasthttp.HeaderTrailer)
}

var errTextBody = errors.New("grpc-web-text body is not base64 in 4-character groups")

// appendDecodeText appends the bytes a grpc-web-text body src encodes to dst. The body is
// standard base64 in groups of four characters; a client may encode each message on its own,
// so padding can end any group, not only the last.
func appendDecodeText(dst, src []byte) ([]byte, error) {
	// encoding/base64 skips line breaks, which would shift the groups: none may appear.
	if len(src)%4 != 0 || bytes.IndexByte(src, '\r') >= 0 || bytes.IndexByte(src, '\n') >= 0 {
		return dst, errTextBody
	}
	for len(src) > 0 {
		// Decode up to and including the first group holding padding: base64 allows padding only
		// at the end.
		n := len(src)
		if i := bytes.IndexByte(src, '='); i >= 0 {
			n = min(i/4*4+4, len(src))
		}
		var err error
		if dst, err = base64.StdEncoding.AppendDecode(dst, src[:n]); err != nil {
			return dst, errTextBody
		}
		src = src[n:]
	}
	return dst, nil
}

// textDecoder decodes a streamed grpc-web-text request body for the upstream.
type textDecoder struct {
	src   io.Reader
	in    []byte // read from src, not decoded yet (less than a group)
	out   []byte // decoded, not returned yet
	off   int
	err   error
	inBuf [4 << 10]byte
}

func (d *textDecoder) Read(p []byte) (int, error) {
	for d.off == len(d.out) {
		if d.err != nil {
			return 0, d.err
		}
		n, err := d.src.Read(d.inBuf[len(d.in):])
		d.in = d.inBuf[:len(d.in)+n]
		whole := len(d.in) / 4 * 4
		d.out, d.off = d.out[:0], 0
		var derr error
		if d.out, derr = appendDecodeText(d.out, d.in[:whole]); derr != nil {
			d.err = derr
			return 0, derr
		}
		d.in = d.inBuf[:copy(d.inBuf[:], d.in[whole:])]
		switch {
		case err == io.EOF && len(d.in) > 0:
			d.err = errTextBody
		case err != nil:
			d.err = err
		}
	}
	n := copy(p, d.out[d.off:])
	d.off += n
	return n, nil
}

// webStream is a streamed gRPC response body on its way to a gRPC-Web client: the upstream's
// frames as they come (base64, a group per read, for grpc-web-text), then, at the upstream
// body's end, the trailer frame of the trailers that arrived with it.
type webStream struct {
	src  io.Reader
	resp *fasthttp.Response       // the response whose body this is
	hdr  *fasthttp.ResponseHeader // where the upstream's trailers land at the body's end
	text bool
	out  []byte // to return before reading src again
	off  int
	raw  []byte // text: what was read from src
	eof  bool
}

func (s *webStream) Read(p []byte) (int, error) {
	for {
		if s.off < len(s.out) {
			n := copy(p, s.out[s.off:])
			s.off += n
			return n, nil
		}
		if s.eof {
			return 0, io.EOF
		}
		if !s.text {
			n, err := s.src.Read(p)
			if err == io.EOF {
				s.finish()
				if n == 0 {
					continue
				}
				return n, nil
			}
			return n, err
		}
		if s.raw == nil {
			s.raw = make([]byte, 3<<10)
		}
		n, err := s.src.Read(s.raw)
		s.out = base64.StdEncoding.AppendEncode(s.out[:0], s.raw[:n])
		s.off = 0
		if err == io.EOF {
			s.finish()
		} else if err != nil {
			return 0, err
		}
	}
}

// finish queues the trailer frame once the upstream body ended.
func (s *webStream) finish() {
	s.eof = true
	if !s.text {
		s.out, _ = appendTrailerFrame(s.out[:0], s.hdr)
		s.off = 0
	} else {
		var frame [512]byte
		f, _ := appendTrailerFrame(frame[:0], s.hdr)
		s.out = base64.StdEncoding.AppendEncode(s.out, f)
	}
	// Logs and traces read the call's status at the body's end, from the engine once the
	// trailers are gone from the header.
	if code, ok := statusCode(s.hdr.Peek("Grpc-Status")); ok {
		engine.NoteGRPCStatus(s.resp, code)
	}
	dropTrailers(s.hdr)
}
