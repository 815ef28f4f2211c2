package secret

import (
	"strings"
	"testing"
)

func TestName(t *testing.T) {
	for _, n := range []string{"Authorization", "proxy-authorization", "X-Api-Key", "hmac_secret", "access_token", "Cookie", "password", "DB_PASSWD", "client_credentials", "X-Amz-Signature", "sessionid"} {
		if !Name(n) {
			t.Errorf("Name(%q) = false", n)
		}
	}
	for _, n := range []string{"X-Gateway", "Content-Type", "path_prefix", "listen", "endpoint", "X-Country"} {
		if Name(n) {
			t.Errorf("Name(%q) = true", n)
		}
	}
}

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		"https://auth.example.com/jwks?access_token=s3cr3t&v=2": "https://auth.example.com/jwks?access_token=[redacted]&v=2",
		"http://user:pa55@otel.example:4318/v1/traces":          "http://[redacted]@otel.example:4318/v1/traces",
		"redis://:pa55@10.0.0.1:6379/0":                         "redis://[redacted]@10.0.0.1:6379/0",
		`parse "https://u:p@h/x?sig=abc#frag": invalid`:         `parse "https://[redacted]@h/x?sig=[redacted]#frag": invalid`,
		"https://example.com/a@b?q=1":                           "https://example.com/a@b?q=1",
		"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig":    "Authorization: Bearer [redacted]",
		"basic usage of Basic dXNlcjpwYXNzd29yZA==, then":       "basic usage of Basic [redacted], then",
		"no secrets here: http://127.0.0.1:8080/v1/?page=2&x=y": "no secrets here: http://127.0.0.1:8080/v1/?page=2&x=y",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q)\n = %q\nwant %q", in, got, want)
		}
	}
}

func TestHCLLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`  token  = "adm1n-t0ken"   # the admin token`, `  token  = "[redacted]"   # the admin token`},
		{`    request_set = { "Authorization" = "Bearer abcdefgh123", "X-Api-Key" = "k3y", "X-Gateway" = "sluice" }`,
			`    request_set = { "Authorization" = "[redacted]", "X-Api-Key" = "[redacted]", "X-Gateway" = "sluice" }`},
		{`  hmac_secret = env("JWT_SECRET", "fallback-s3cret")`, `  hmac_secret = env("[redacted]", "[redacted]")`},
		{`  jwks_url = "https://idp.example/jwks?access_token=xyz"`, `  jwks_url = "https://idp.example/jwks?access_token=[redacted]"`},
		{`  endpoint = "http://otel:p4ss@collector:4318"`, `  endpoint = "http://[redacted]@collector:4318"`},
		{`  read_timeout = "soon"`, `  read_timeout = "soon"`},
		{`  password = 12345`, `  password = 12345`}, // not a string: nothing to hide in the snippet's literal scan
	} {
		got, _ := HCLLine(tc.in)
		if got != tc.want {
			t.Errorf("HCLLine(%q)\n = %q\nwant %q", tc.in, got, tc.want)
		}
	}
	// Columns after a redacted literal move with it; inside it they stay inside.
	line := `  token = "a-long-secret-value" x`
	out, col := HCLLine(line)
	if x := strings.IndexByte(line, 'x'); out[col(x)] != 'x' {
		t.Errorf("col(%d) = %d in %q, not the x", x, col(x), out)
	}
	if in := strings.Index(line, "long"); col(in) < strings.IndexByte(out, '[') || col(in) > strings.IndexByte(out, ']') {
		t.Errorf("a column inside the secret maps to %d, outside the marker in %q", col(in), out)
	}
}

// FuzzHCLLine: any line maps every column into the result, in order, and Text never panics.
func FuzzHCLLine(f *testing.F) {
	f.Add(`  token = "abc\"def" # x`)
	f.Add(`{ "Authorization" = "Bearer abcdefghij", k = env("X", "y") }`)
	f.Add(`u = "http://a:b@c/?access_token=1&sig=2#f"`)
	f.Fuzz(func(t *testing.T, line string) {
		_ = Text(line)
		out, col := HCLLine(line)
		prev := 0
		for c := 0; c <= len(line); c++ {
			n := col(c)
			if n < prev || n > len(out) {
				t.Fatalf("col(%d) = %d after %d, result length %d: %q → %q", c, n, prev, len(out), line, out)
			}
			prev = n
		}
	})
}
