package engine

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/sluice-gateway/sluice/engine/secret"
)

// redactQuoted hides what a client sent in a message of fasthttp's: some of its parse errors
// quote the offending header line or request target, credentials included (`malformed mime
// header: missing colon: "Authorization Bearer …"`, with SecureErrorLogMessage set too). Every
// quoted string but an address keeps only its start: up to the first ':', ' ' or '?' (at most 64
// bytes), which names the header or the path, then "[redacted]". A quoted header or trailer
// value ("invalid header value %q") keeps nothing: it comes without its name, so its start
// names nothing and may be the credential itself.
func redactQuoted(msg string) string {
	if strings.IndexByte(msg, '"') < 0 {
		return msg
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(msg, '"')
		if i < 0 {
			b.WriteString(msg)
			return b.String()
		}
		before := msg[:i]
		b.WriteString(before)
		q, err := strconv.QuotedPrefix(msg[i:])
		if err != nil {
			b.WriteString(msg[i:]) // an unmatched quote: nothing after it was quoted by fasthttp
			return b.String()
		}
		msg = msg[i+len(q):]
		s, _ := strconv.Unquote(q)
		if _, err := netip.ParseAddrPort(s); err == nil {
			b.WriteString(q)
			continue
		}
		keep := s
		if strings.HasSuffix(before, "value ") {
			keep = ""
		}
		if j := strings.IndexAny(keep, ": ?"); j >= 0 {
			keep = keep[:j]
		}
		if len(keep) > 64 {
			keep = keep[:64]
		}
		if keep == "" && s != "" {
			keep = secret.Marker
		} else if keep != s {
			keep += " " + secret.Marker
		}
		b.WriteString(strconv.Quote(keep))
	}
}
