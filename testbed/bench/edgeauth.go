package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/crypto/bcrypt"
)

// edgeAuthComponents are the filter-cost rows of issue 31's authentication filters, each on the
// path the load takes after its first request: basic_auth with its credential cached, and
// forward_auth with its decision cached (the bench upstream, which answers every request 200,
// stands in for the authorization service and is asked once).
func edgeAuthComponents(run string) ([]component, error) {
	const user, password = "bench", "bench-password"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return nil, err
	}
	htpasswd := filepath.Join(run, "bench.htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o644); err != nil {
		return nil, err
	}
	basic := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	return []component{
		{name: "basic_auth", filter: fmt.Sprintf(`  filter "basic_auth" {
    htpasswd_file = %q
  }
`, htpasswd), headers: []string{basic}},
		{name: "forward_auth", filter: fmt.Sprintf(`  filter "forward_auth" {
    url       = "http://%s/"
    cache_ttl = "1h"
    cache_key = ["Authorization"]
  }
`, addr(portUpstream)), headers: []string{"Authorization: Bearer bench-token"}},
	}, nil
}
