package grpcweb

import (
	"bytes"
	"encoding/base64"
	"io"
	"testing"
)

// FuzzDecodeText: a grpc-web-text body, held or streamed in pieces of any size, decodes to what
// decoding it four characters at a time gives, or is refused in both forms.
func FuzzDecodeText(f *testing.F) {
	f.Add([]byte("AAAAAAJhYg=="), 3)
	f.Add([]byte("AAAAAAJhYg==AAAAAANjZGU="), 5)
	f.Add([]byte("QQ=x"), 1)
	f.Add([]byte("AAAAAAE"), 2)
	f.Fuzz(func(t *testing.T, body []byte, piece int) {
		var want []byte
		ok := len(body)%4 == 0
		for i := 0; ok && i < len(body); i += 4 {
			b, err := base64.StdEncoding.DecodeString(string(body[i : i+4]))
			if err != nil || bytes.ContainsAny(body[i:i+4], "\r\n") {
				ok = false
				break
			}
			want = append(want, b...)
		}
		got, err := appendDecodeText(nil, body)
		if ok != (err == nil) || (ok && !bytes.Equal(got, want)) {
			t.Fatalf("held %q: %q, %v; want %q, ok %v", body, got, err, want, ok)
		}
		d := &textDecoder{src: &pieceReader{b: body, n: max(piece%7, 1)}}
		streamed, err := io.ReadAll(d)
		if ok != (err == nil) || (ok && !bytes.Equal(streamed, want)) {
			t.Fatalf("streamed %q in pieces of %d: %q, %v; want %q, ok %v", body, max(piece%7, 1), streamed, err, want, ok)
		}
	})
}

// pieceReader returns b n bytes at a time.
type pieceReader struct {
	b []byte
	n int
}

func (r *pieceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[n:]
	return n, nil
}
