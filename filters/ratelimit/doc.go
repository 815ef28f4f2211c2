// Package ratelimit implements the "rate_limit" filter kind: exact per-key request rate limits,
// counted in process or shared by every gateway instance through Redis.
//
// # Algorithm and guarantees
//
// Decisions use the generic cell rate algorithm (GCRA) with an emission interval
// T = period / limit (rounded up to the store's resolution: 1ns locally, 1µs in Redis) and a
// tolerance tau = (burst - 1) × T. The only state per key is its theoretical arrival time TAT. A
// request at time now is admitted when now >= TAT - tau, and then TAT becomes max(TAT, now) + T;
// a refused request changes nothing.
//
// burst is how many requests a key that was quiet for burst × T may send back to back; unset, it
// is limit, so `limit = 50, period = "1m"` admits 50 at once and then one per 1.2s while the
// client keeps pushing. Any window of length period then holds at most limit + burst - 1 admitted
// requests, and over any longer span the rate tends to limit per period.
//
// With burst = 1, admitted requests are at least T apart, so no window of length period (any
// half-open interval [s, s+period), wherever it starts) ever holds more than limit admitted
// requests: the limit+1-th request of a window is the one refused. burst = 0 is an error (it
// meant burst = 1 when burst counted the requests on top of the first).
//
// Worked example, limit = 100, period = "1m" (T = 600ms):
//
//	burst = 1, a client idle until t = 0:
//	  t = 0      admitted (TAT = 0.6s)     RateLimit: "default";r=0;t=1
//	  t = 0.1s   refused, 429, Retry-After: 1 (conforms at 0.6s), RateLimit: "default";r=0;t=1
//	  t = 0.6s   admitted (TAT = 1.2s), and so on once per 600ms: 100 in any minute.
//	no burst (100, tau = 59.4s), the same client:
//	  t = 0      requests 1 to 100 admitted, RateLimit r=99, 98, … 0 (TAT = 60s)
//	  t = 0      request 101 refused: TAT - tau = 0.6s > 0, Retry-After: 1
//	  t = 0.6s   admitted, then one per 600ms: at most 199 in the first minute, 100 a minute after.
//
// # Keys
//
// key = "ip" counts by client address (the server's trusted_proxies decide it), "header:NAME"
// by a request header's value, "claim:NAME" by a verified JWT claim (engine.ClaimsKey, set by an
// earlier jwt filter; dots walk into objects, arrays are joined with ","), "route" by the
// pipeline (one budget shared by every client). A request lacking the value (no header, no
// claims, an empty value) is counted under one shared "anonymous" key: never unlimited.
//
// # Stores
//
// Without store, a local store decides: 64 shards, each a mutex, a map from the key's seeded
// 64-bit hash (for an IPv4 client, its address under a secret mask, Fibonacci-mixed: a
// bijection) to a slot and the slots' TATs, with no global lock. Idle keys (TAT passed) carry
// no information and are swept; each shard holds at most DefaultMaxKeys/64 keys, and a new key
// arriving at a full shard evicts the sampled key closest to idle, so a flood of distinct keys
// costs bounded memory. The local clock is the request's start time on the monotonic clock.
//
// With store = redis.NAME, each decision is one Lua script (EVALSHA, falling back to EVAL after a
// Redis restart) that reads Redis' own clock (TIME), decides and stores the new TAT with an
// expiry at TAT, atomically: instances never race, and their clocks do not matter. Keys are
// "sluice:rl:PIPELINE:POLICY:" followed by the key kind and value. All rate_limit filters of a
// configuration that name the same redis block share one pooled client, closed when the
// configuration is retired. Every command is bounded by the block's timeout; a failure marks the
// block down, logs once, and from then on requests do not wait on Redis: one request per 200ms
// probes it, and the first success resumes shared limiting (logged once too). While it is down,
// on_store_error decides: "allow" admits, "deny" answers 503 with Retry-After: 1, "local" (the
// default) counts in this instance's local store. Each filter logs its mode once per outage;
// metrics count every such request.
//
// # Response fields
//
// Refused requests get 429 with Retry-After (whole seconds until the key conforms again). With
// headers = true (the default), every response, local or from the upstream, also carries the
// fields of draft-ietf-httpapi-ratelimit-headers (the RateLimit-Policy / RateLimit version):
//
//	RateLimit-Policy: "default";q=100;w=60;sluice-burst=100
//	RateLimit: "default";r=99;t=1
//
// q is limit, w the period in whole seconds (rounded up), sluice-burst the burst. r is how many
// requests the key may send right now, back to back, and have admitted: what the next requests
// actually get. t is the seconds until that improves: until the whole burst is back when r > 0,
// until the next request conforms when r = 0 (on a 429, t equals Retry-After). The policy name
// is the filter's name attribute, "default" unless set. RateLimit is omitted when the store was
// unavailable and on_store_error is allow or deny (no count is known). Fields are added, never
// replacing an upstream's own.
package ratelimit
