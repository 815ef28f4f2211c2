package engine

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

type closeCounter struct {
	io.Reader
	closes    int
	closeErrs []error
}

func (c *closeCounter) Close() error { c.closes++; return nil }

type closeWithErr struct{ *closeCounter }

func (c closeWithErr) CloseWithError(err error) error {
	c.closeErrs = append(c.closeErrs, err)
	return nil
}

// TestWrapResponseStream: the wrapper reads the stream without it being closed by the swap, and
// fasthttp closing the response closes the wrapped stream once.
func TestWrapResponseStream(t *testing.T) {
	var resp fasthttp.Response
	if WrapResponseStream(&resp, func(r io.Reader) io.Reader { return r }) {
		t.Error("wrapped a response without a body stream")
	}
	inner := &closeCounter{Reader: strings.NewReader("hello")}
	resp.SetBodyStream(inner, -1)
	if !WrapResponseStream(&resp, func(r io.Reader) io.Reader {
		return io.MultiReader(r, strings.NewReader(" world"))
	}) {
		t.Fatal("not wrapped")
	}
	if inner.closes != 0 {
		t.Fatalf("the wrapped stream was closed %d times by the wrap", inner.closes)
	}
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	if err := resp.Write(w); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if !strings.HasSuffix(out.String(), "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n") {
		t.Errorf("response written as %q", out.String())
	}
	if inner.closes != 1 {
		t.Errorf("inner stream closed %d times, want 1", inner.closes)
	}
}

// TestWrapStreamCloseWithError: an inner stream taking the write error gets it, once.
func TestWrapStreamCloseWithError(t *testing.T) {
	cc := &closeCounter{Reader: strings.NewReader("x")}
	var resp fasthttp.Response
	resp.SetBodyStream(closeWithErr{cc}, -1)
	WrapResponseStream(&resp, func(r io.Reader) io.Reader { return r })
	s := resp.BodyStream().(*wrappedStream)
	boom := errors.New("client went away")
	_ = s.CloseWithError(boom)
	_ = s.Close()
	if cc.closes != 1 || len(cc.closeErrs) != 1 || cc.closeErrs[0] != boom {
		t.Errorf("closes %d, CloseWithError %v; want 1, [%v]", cc.closes, cc.closeErrs, boom)
	}
}

func TestWrapRequestStream(t *testing.T) {
	var req fasthttp.Request
	inner := &closeCounter{Reader: strings.NewReader("abc")}
	req.SetBodyStream(inner, 3)
	WrapRequestStream(&req, func(r io.Reader) io.Reader { return io.MultiReader(r, strings.NewReader("d")) })
	b, err := io.ReadAll(req.BodyStream())
	if err != nil || string(b) != "abcd" || inner.closes != 0 {
		t.Fatalf("read %q, %v, closes %d", b, err, inner.closes)
	}
	_ = req.CloseBodyStream()
	if inner.closes != 1 {
		t.Errorf("inner closed %d times, want 1", inner.closes)
	}
}
