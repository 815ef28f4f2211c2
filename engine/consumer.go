package engine

// Consumer is the identity an authentication filter verified for the request: the API key's or
// the user's name, and which filter vouched for it. key_auth, basic_auth and forward_auth set it
// under ConsumerKey; rate_limit (key = "consumer"), authorize and otel_log read it.
type Consumer struct {
	// ID names the consumer ("mobile-app", "alice"); never a credential.
	ID string
	// Method is the kind of the filter that verified it ("key_auth", "basic_auth", "forward_auth").
	Method string
}

// ConsumerKey holds the request's verified consumer.
var ConsumerKey = NewKey[*Consumer]("consumer")
