package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// benchEdgeKey is the API key the key_auth row's load sends.
const benchEdgeKey = "bench-edge-key-3b9e1c7f0d2a4b6c8e1f3a5c7e9b0d2f"

// edgeComponents are the filter-cost rows of the edge policy filters (issue 31): cors on actual
// requests from an allowed origin, ip_filter with 100,000 deny prefixes (the load's 127.0.0.1
// allowed), key_auth with a header key. Their files are written into dir (the scratch folder,
// where the configurations are).
func edgeComponents(dir string) ([]component, error) {
	r := rand.New(rand.NewPCG(31, 1))
	var b strings.Builder
	for range 100_000 {
		// Random public IPv4 /16–/32 and IPv6 /32–/64 prefixes, none covering 127.0.0.0/8.
		if r.IntN(5) > 0 {
			a := netip.AddrFrom4([4]byte{byte(r.IntN(126) + 1), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
			fmt.Fprintln(&b, netip.PrefixFrom(a, 16+r.IntN(17)).Masked())
			continue
		}
		var a [16]byte
		a[0], a[1] = 0x20, 0x01
		for i := 2; i < 8; i++ {
			a[i] = byte(r.IntN(256))
		}
		fmt.Fprintln(&b, netip.PrefixFrom(netip.AddrFrom16(a), 32+r.IntN(33)).Masked())
	}
	if err := os.WriteFile(filepath.Join(dir, "edge-deny.txt"), []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(benchEdgeKey))
	if err := os.WriteFile(filepath.Join(dir, "edge-keys.txt"), []byte("bench "+hex.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		return nil, err
	}
	return []component{
		{name: "cors", filter: `  filter "cors" {
    allow_origins     = ["https://app.example.com", "https://*.example.com"]
    allow_headers     = ["Content-Type", "X-API-Key"]
    allow_credentials = true
  }
`, headers: []string{"Origin: https://shop.example.com"}},
		{name: "ip_filter", filter: `  filter "ip_filter" {
    allow     = ["127.0.0.0/8"]
    deny_file = "edge-deny.txt"
  }
`},
		{name: "key_auth", filter: `  filter "key_auth" {
    keys_file = "edge-keys.txt"
  }
`, headers: []string{"X-API-Key: " + benchEdgeKey}},
	}, nil
}
