package jwt

import (
	"crypto/elliptic"
	"encoding/json"
	"strings"
	"testing"
)

// TestParseJWKSAcceptsABareJWK: a file or endpoint holding one JWK (not wrapped in {"keys":[…]})
// is a set of that key, as parseJWKS's comment promises; a bare key that cannot verify fails
// with an error that says why, without fmt's %!w(<nil>).
func TestParseJWKSAcceptsABareJWK(t *testing.T) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(jwksJSON(t, jwksKey{kid: "solo", key: ecKey(t, elliptic.P256())}), &set); err != nil {
		t.Fatal(err)
	}
	ks, skipped, err := parseJWKS(set.Keys[0])
	if err != nil {
		t.Fatalf("a bare JWK: %v", err)
	}
	if len(ks.all) != 1 || ks.all[0].kid != "solo" || len(skipped) != 0 {
		t.Errorf("keys %v, skipped %v; want the one key solo", ks.all, skipped)
	}

	for _, bad := range []string{`{"kty":"weird","kid":"x"}`, `{"keys":[]}`, `[]`, `not json`} {
		_, _, err := parseJWKS([]byte(bad))
		if err == nil {
			t.Errorf("%s parsed", bad)
			continue
		}
		t.Logf("%s: %v", bad, err)
		if strings.Contains(err.Error(), "%!") {
			t.Errorf("%s: error text %q has a formatting artifact", bad, err)
		}
	}
}
