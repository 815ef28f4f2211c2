// Command redact is a Sluice filter that masks sensitive fields of JSON request bodies before they
// reach the upstream (and its logs): every member named in "fields", at any depth, gets its value
// replaced by the mask string. The rest of the document is kept byte for byte.
//
// Config: {"fields": ["password", "card_number"], "mask": "***"}
package main

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/sluice-gateway/sluice/sdk/go/filter"
)

type config struct {
	Fields []string `json:"fields"`
	Mask   string   `json:"mask"`
}

type redactor struct {
	fields [][]byte
	mask   []byte // the mask as a JSON string literal
}

func main() {}

func init() {
	cfg := config{Mask: "***"}
	if raw := filter.Config(); len(raw) > 0 {
		if err := json.Unmarshal(raw, &cfg); err != nil {
			panic("redact: config: " + err.Error())
		}
	}
	filter.Handle(newRedactor(cfg))
}

func newRedactor(cfg config) *redactor {
	r := &redactor{}
	for _, f := range cfg.Fields {
		r.fields = append(r.fields, []byte(f))
	}
	r.mask, _ = json.Marshal(cfg.Mask)
	return r
}

func (r *redactor) HandleRequest(req filter.Request, _ filter.Response) (bool, uint32) {
	ct, _ := req.Header().GetBytes("content-type")
	if !bytes.Contains(bytes.ToLower(ct), []byte("json")) {
		return true, 0
	}
	// Buffering keeps the body readable for the upstream if we decide not to rewrite it.
	filter.EnableFeatures(filter.FeatureBufferRequest)
	body := req.Body().ReadAll()
	out, n := redact(body, r.fields, r.mask)
	if n > 0 {
		req.Body().Write(out)
		req.Header().Set("x-redacted", strconv.Itoa(n))
	}
	return true, 0
}

func (*redactor) HandleResponse(uint32, filter.Request, filter.Response, bool) {}

// redact returns doc with the values of members named in fields replaced by mask, and how many
// were replaced. It scans tokens without building a tree; malformed input is returned as is.
func redact(doc []byte, fields [][]byte, mask []byte) ([]byte, int) {
	var out []byte
	n, last := 0, 0
	for i := 0; i < len(doc); i++ {
		if doc[i] != '"' {
			continue
		}
		end := skipString(doc, i)
		if end < 0 {
			return doc, 0
		}
		key := doc[i+1 : end-1]
		j := skipSpace(doc, end)
		if j < len(doc) && doc[j] == ':' && matches(key, fields) {
			vs := skipSpace(doc, j+1)
			ve := skipValue(doc, vs)
			if ve < 0 {
				return doc, 0
			}
			out = append(out, doc[last:vs]...)
			out = append(out, mask...)
			last, n = ve, n+1
			i = ve - 1
			continue
		}
		i = end - 1
	}
	if n == 0 {
		return doc, 0
	}
	return append(out, doc[last:]...), n
}

func matches(key []byte, fields [][]byte) bool {
	for _, f := range fields {
		if bytes.Equal(key, f) {
			return true
		}
	}
	return false
}

func skipSpace(doc []byte, i int) int {
	for i < len(doc) && (doc[i] == ' ' || doc[i] == '\t' || doc[i] == '\n' || doc[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at doc[i] == '"', or -1.
func skipString(doc []byte, i int) int {
	for i++; i < len(doc); i++ {
		switch doc[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index after the JSON value starting at i, or -1.
func skipValue(doc []byte, i int) int {
	if i >= len(doc) {
		return -1
	}
	switch doc[i] {
	case '"':
		return skipString(doc, i)
	case '{', '[':
		depth := 0
		for ; i < len(doc); i++ {
			switch doc[i] {
			case '"':
				e := skipString(doc, i)
				if e < 0 {
					return -1
				}
				i = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	for ; i < len(doc); i++ {
		switch doc[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}
