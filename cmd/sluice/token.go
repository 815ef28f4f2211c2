package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/filters/jwt"
)

func init() {
	commands["token"] = command{summary: "mint a signed JWT for local testing", run: runToken}
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func runToken(args []string) int { return mintToken(args, os.Stdout, os.Stderr) }

// mintToken implements `sluice token`: it prints one compact JWT on stdout.
func mintToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secret := fs.String("hmac-secret", "", "sign with this HMAC secret (HS256 by default; at least 32 bytes)")
	secretEnv := fs.String("hmac-secret-env", "", "read the HMAC secret from this environment variable (keeps it out of the shell history)")
	keyFile := fs.String("key", "", "sign with this PEM private key (RSA, EC or Ed25519; PKCS #8, PKCS #1 or SEC 1)")
	alg := fs.String("alg", "", "algorithm: HS256/384/512, RS256/384/512, PS256/384/512, ES256/384/512, EdDSA (default: from the key)")
	kid := fs.String("kid", "", "key id header, to pick the key from a JWKS")
	sub := fs.String("sub", "", "subject claim")
	iss := fs.String("iss", "", "issuer claim")
	scope := fs.String("scope", "", "scope claim, space-separated")
	ttl := fs.Duration("ttl", time.Hour, "lifetime: exp = now + ttl")
	var aud, claims listFlag
	fs.Var(&aud, "aud", "audience claim (repeat for several)")
	fs.Var(&claims, "claim", "extra claim NAME=VALUE (repeatable); VALUE is JSON when it parses as JSON, else a string")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: sluice token (-hmac-secret S | -hmac-secret-env NAME | -key FILE) [flags]")
		fmt.Fprintln(stderr, "\nPrints a signed JWT for local testing, e.g.:")
		fmt.Fprintln(stderr, "  curl -H \"Authorization: Bearer $(sluice token -hmac-secret-env JWT_SECRET -sub demo -scope catalog:read)\" …")
		fmt.Fprintln(stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice token: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "sluice token: "+format+"\n", a...)
		return 1
	}

	if *secretEnv != "" {
		v, ok := os.LookupEnv(*secretEnv)
		if !ok || v == "" {
			return fail("environment variable %s is not set", *secretEnv)
		}
		*secret = v
	}
	var key any
	switch {
	case *secret != "" && *keyFile != "":
		return fail("give either an HMAC secret or -key, not both")
	case *secret != "":
		key = []byte(*secret)
	case *keyFile != "":
		data, err := os.ReadFile(*keyFile)
		if err != nil {
			return fail("%v", err)
		}
		if key, err = jwt.ParsePrivateKeyPEM(data); err != nil {
			return fail("%s: %v", *keyFile, err)
		}
	default:
		fs.Usage()
		return 2
	}
	if *ttl <= 0 {
		return fail("-ttl must be positive")
	}

	now := time.Now()
	cl := map[string]any{"iat": now.Unix(), "exp": now.Add(*ttl).Unix()}
	for _, c := range claims {
		name, val, ok := strings.Cut(c, "=")
		if !ok || name == "" {
			return fail("-claim %q: want NAME=VALUE", c)
		}
		var v any
		if err := json.Unmarshal([]byte(val), &v); err != nil {
			v = val
		}
		cl[name] = v
	}
	// The dedicated flags win over -claim.
	set := func(name, v string) {
		if v != "" {
			cl[name] = v
		}
	}
	set("sub", *sub)
	set("iss", *iss)
	set("scope", *scope)
	switch len(aud) {
	case 0:
	case 1:
		cl["aud"] = aud[0]
	default:
		cl["aud"] = []string(aud)
	}
	tok, err := jwt.Mint(*alg, key, *kid, cl)
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
