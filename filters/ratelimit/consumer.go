package ratelimit

import "github.com/sluice-gateway/sluice/engine"

// consumer is the name of the request's verified consumer ("", false: none).
func consumer(c *engine.Ctx) (string, bool) {
	cons, ok := engine.ConsumerKey.Get(c)
	if !ok || cons == nil || cons.ID == "" {
		return "", false
	}
	return cons.ID, true
}

// isAuthKind reports whether a filter kind sets the consumer.
func isAuthKind(kind string) bool {
	return kind == "key_auth" || kind == "basic_auth" || kind == "forward_auth"
}
