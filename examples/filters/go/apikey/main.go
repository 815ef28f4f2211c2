// Command apikey is a Sluice filter that admits only requests carrying a known API key: it
// answers 401 itself otherwise, strips the key before the request goes upstream (so it never
// reaches backend logs), and names the consumer in an X-Consumer header both ways.
//
// Config: {"header": "X-API-Key", "keys": {"<key>": "<consumer>", ...}}
//
// This is the reference filter: the same behaviour is implemented in every SDK language.
package main

import (
	"encoding/json"
	"sort"

	"github.com/sluice-gateway/sluice/sdk/go/filter"
)

type config struct {
	Header string            `json:"header"`
	Keys   map[string]string `json:"keys"`
}

type apiKey struct {
	header    string
	keys      []string // sorted; reqCtx is index+1 into keys/consumers
	consumers []string
}

func main() {}

func init() {
	cfg := config{Header: "x-api-key"}
	if raw := filter.Config(); len(raw) > 0 {
		if err := json.Unmarshal(raw, &cfg); err != nil {
			// Panicking in init makes the filter fail to load, with the message in the gateway log.
			panic("apikey: config: " + err.Error())
		}
	}
	f := &apiKey{header: cfg.Header}
	for k := range cfg.Keys {
		f.keys = append(f.keys, k)
	}
	sort.Strings(f.keys)
	for _, k := range f.keys {
		f.consumers = append(f.consumers, cfg.Keys[k])
	}
	filter.Handle(f)
}

func (f *apiKey) HandleRequest(req filter.Request, resp filter.Response) (bool, uint32) {
	got, ok := req.Header().GetBytes(f.header) // a view: compare it before the next SDK call
	if ok {
		for i, k := range f.keys {
			if string(got) == k { // no allocation: the compiler compares without converting
				req.Header().Remove(f.header)
				req.Header().Set("x-consumer", f.consumers[i])
				return true, uint32(i + 1)
			}
		}
	}
	resp.SetStatusCode(401)
	resp.Header().Set("content-type", "text/plain; charset=utf-8")
	resp.Header().Set("www-authenticate", "ApiKey")
	resp.Body().WriteString("invalid API key\n")
	return false, 0
}

func (f *apiKey) HandleResponse(reqCtx uint32, _ filter.Request, resp filter.Response, isError bool) {
	if isError || reqCtx == 0 || int(reqCtx) > len(f.consumers) {
		return
	}
	resp.Header().Set("x-consumer", f.consumers[reqCtx-1])
}
