package basicauth

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzCredentials: any Authorization value is parsed without panicking, and what is accepted is
// exactly what base64-decoding the value after "Basic " and cutting at the first ':' gives.
func FuzzCredentials(f *testing.F) {
	for _, s := range []string{"Basic YWxpY2U6d29uZGVybGFuZA==", "basic Og==", "Basic", "Basic ====", "BASIC  YTpi", "Bearer x", "Basic YQ", "Basic " + strings.Repeat("A", 2000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		token, ok := basicToken([]byte(v))
		if !ok {
			return
		}
		var buf [maxCredentialBytes / 4 * 3]byte
		name, pw, ok := decodeCredentials(token, buf[:])
		if !ok {
			return
		}
		if len(v) < 6 || !strings.EqualFold(v[:6], "basic ") {
			t.Fatalf("accepted %q without the Basic scheme", v)
		}
		dec, err := base64.StdEncoding.DecodeString(strings.TrimLeft(v[6:], " "))
		if err != nil {
			t.Fatalf("accepted %q, which does not decode: %v", v, err)
		}
		user, pass, found := bytes.Cut(dec, []byte(":"))
		if !found || !bytes.Equal(user, name) || !bytes.Equal(pass, pw) || len(name) == 0 {
			t.Fatalf("%q: got %q/%q, want %q/%q", v, name, pw, user, pass)
		}
		for _, b := range name {
			if b < 0x20 || b == 0x7f {
				t.Fatalf("%q: a control character in the user %q", v, name)
			}
		}
	})
}
