package basicauth

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/sluice-gateway/sluice/engine"
	"golang.org/x/crypto/bcrypt"
)

// user is one line of the htpasswd file.
type user struct {
	name     string
	hash     []byte
	consumer *engine.Consumer // made once: setting it on a request allocates nothing
}

// parseHtpasswd reads "name:hash" lines. Blank lines and lines starting with '#' are skipped.
// Only bcrypt hashes ($2y$, $2a$, $2b$) are accepted: the other schemes htpasswd can write (MD5
// apr1, SHA-1, crypt, plain text) are fast to brute-force, and a line using one is refused with
// its line number, never its content.
func parseHtpasswd(file string, b []byte) (map[string]*user, error) {
	users := map[string]*user{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("%s line %d: want name:bcrypt-hash", file, n)
		}
		if !printable(name) {
			return nil, fmt.Errorf("%s line %d: the user name must be printable ASCII", file, n)
		}
		if scheme := hashScheme(hash); scheme != "" {
			return nil, fmt.Errorf("%s line %d (user %q): %s hashes are not accepted, only bcrypt ($2y$, $2a$, $2b$); re-create the entry with `htpasswd -B`", file, n, name, scheme)
		}
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("%s line %d (user %q): not a valid bcrypt hash: %w", file, n, name, err)
		}
		if cost < bcrypt.MinCost {
			return nil, fmt.Errorf("%s line %d (user %q): bcrypt cost %d is below %d", file, n, name, cost, bcrypt.MinCost)
		}
		if _, dup := users[name]; dup {
			return nil, fmt.Errorf("%s line %d: user %q is listed twice", file, n, name)
		}
		users[name] = &user{name: name, hash: []byte(hash), consumer: &engine.Consumer{ID: name, Method: "basic_auth"}}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s line %d: %w", file, n+1, err)
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("%s lists no users", file)
	}
	return users, nil
}

// hashScheme names a hash scheme other than bcrypt, or returns "" for a bcrypt-looking hash.
func hashScheme(h string) string {
	switch {
	case strings.HasPrefix(h, "$2y$"), strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"):
		return ""
	case strings.HasPrefix(h, "$apr1$"):
		return "MD5 (apr1)"
	case strings.HasPrefix(h, "$1$"):
		return "MD5-crypt"
	case strings.HasPrefix(h, "{SHA}"):
		return "SHA-1"
	case strings.HasPrefix(h, "$5$"), strings.HasPrefix(h, "$6$"):
		return "SHA-crypt"
	case strings.HasPrefix(h, "$"):
		return "an unknown $…$"
	case len(h) == 13:
		return "DES crypt"
	default:
		return "plain-text or unknown"
	}
}
