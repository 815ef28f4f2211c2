package engine

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// NormalizePath appends the normalized form of the raw request path to dst and returns it:
// percent-encodings of unreserved characters are decoded (so /%61dmin is /admin), every other
// escape is kept with upper-case hex (an encoded "/" stays a byte of its segment, never a
// separator), a stray '%' becomes "%25", dot segments are resolved (never above the root), and runs of slashes become one.
// The result always starts with "/". It allocates only when dst is too small.
func NormalizePath(dst, raw []byte) []byte {
	start := len(dst)
	dst = append(dst, '/')
	for i := 0; i < len(raw); {
		// Skip slashes: the output already ends with one.
		for i < len(raw) && raw[i] == '/' {
			i++
		}
		if i >= len(raw) {
			break
		}
		segStart := len(dst)
		for i < len(raw) && raw[i] != '/' {
			b := raw[i]
			if b == '%' && i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2]) {
				d := unhex(raw[i+1])<<4 | unhex(raw[i+2])
				if isUnreserved(d) {
					dst = append(dst, d)
				} else {
					dst = append(dst, '%', upperHex(raw[i+1]), upperHex(raw[i+2]))
				}
				i += 3
				continue
			}
			if b == '%' {
				// A '%' that starts no valid escape is itself escaped, so a later decoding (a
				// second normalization, or an upstream that decodes) cannot turn "%7%30" into
				// "%70" and then into "p".
				dst = append(dst, '%', '2', '5')
				i++
				continue
			}
			dst = append(dst, b)
			i++
		}
		seg := dst[segStart:]
		switch {
		case len(seg) == 1 && seg[0] == '.':
			dst = dst[:segStart]
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			dst = dst[:segStart]
			// Drop the previous segment, but never the leading "/".
			if len(dst)-start > 1 {
				j := len(dst) - 2
				for j > start && dst[j] != '/' {
					j--
				}
				dst = dst[:j+1]
			}
		default:
			if i < len(raw) {
				dst = append(dst, '/')
			}
		}
	}
	// A trailing slash of the raw path is kept: /a/ and /a are different resources.
	if len(raw) > 0 && raw[len(raw)-1] == '/' && dst[len(dst)-1] != '/' {
		dst = append(dst, '/')
	}
	return dst
}

func isHex(b byte) bool {
	return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F')
}

func unhex(b byte) byte {
	switch {
	case b >= '0' && b <= '9':
		return b - '0'
	case b >= 'a' && b <= 'f':
		return b - 'a' + 10
	}
	return b - 'A' + 10
}

func upperHex(b byte) byte {
	if b >= 'a' && b <= 'f' {
		return b - 'a' + 'A'
	}
	return b
}

// isUnreserved reports RFC 3986 unreserved characters, the ones whose encoding never matters.
func isUnreserved(b byte) bool {
	return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
		b == '-' || b == '.' || b == '_' || b == '~'
}

// RawPath returns the raw (still percent-encoded) path and query of a request, as fasthttp's
// URI().PathOriginal() and QueryString() give them. An origin-form request-target ("/path?query",
// nearly every request) is split in place: parsing the whole URI (host, scheme, a normalized
// copy of the path that the gateway normalizes its own way anyway) cost more than routing the
// request. Any other form goes through the URI.
func RawPath(r *fasthttp.Request) (path, query []byte) {
	t := r.Header.RequestURI()
	if len(t) == 0 || t[0] != '/' || (len(t) > 1 && t[1] == '/') {
		u := r.URI()
		return u.PathOriginal(), u.QueryString()
	}
	// The server rejected control bytes in the request line, so what fasthttp's URI would do
	// here is only this: the path ends at the first '?' or '#', the query at the first '#' after
	// it (a '?' inside a fragment starts no query).
	end := len(t)
	if i := bytes.IndexByte(t, '#'); i >= 0 {
		end = i
	}
	path = t[:end]
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path, query = t[:i], t[i+1:end]
	}
	return path, query
}
