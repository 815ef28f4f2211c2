package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// mintHS256 returns a compact JWS (HS256) for the benchmark's jwt filter: the same token on every
// request, as a real client reuses its token, so the filter's verified-token cache is warm.
func mintHS256(secret, issuer, audience, subject string, ttl time.Duration) (string, error) {
	enc := base64.RawURLEncoding
	hdr, err := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	if err != nil {
		return "", err
	}
	now := time.Now()
	claims, err := json.Marshal(map[string]any{
		"iss": issuer, "aud": audience, "sub": subject,
		"iat": now.Unix(), "nbf": now.Unix() - 60, "exp": now.Add(ttl).Unix(),
	})
	if err != nil {
		return "", err
	}
	signing := enc.EncodeToString(hdr) + "." + enc.EncodeToString(claims)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(m.Sum(nil)), nil
}

// headersMain is `bench headers`: the request headers the quickstart-like pipeline needs (a fresh
// token and the API key), one per line, for wrk -H or curl -H by hand.
func headersMain([]string) error {
	token, err := mintHS256(benchHMACSecret, "https://bench.sluice/", "bench", "bench-user", 24*time.Hour)
	if err != nil {
		return err
	}
	fmt.Println("Authorization: Bearer " + token)
	fmt.Println("X-API-Key: " + benchAPIKey)
	return nil
}
