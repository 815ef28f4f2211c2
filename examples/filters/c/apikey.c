/*
 * apikey: admits only requests carrying a known API key; answers 401 itself otherwise, strips the
 * key before the request goes upstream, and names the consumer in an x-consumer header both ways.
 * The reference filter: every SDK language implements this same behaviour.
 *
 * Config: {"header": "X-API-Key", "keys": {"<key>": "<consumer>", ...}}  (at most 32 keys)
 */
#include "sluice_filter.h"

#define MAX_KEYS 32
#define MAX_LEN 128

static int loaded;
static char header[MAX_LEN] = "x-api-key";
static char keys[MAX_KEYS][MAX_LEN], consumers[MAX_KEYS][MAX_LEN];
static uint32_t nkeys;
static char cfg[8192];

static int cmp(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return (unsigned char)*a - (unsigned char)*b;
}

static void swap(char *a, char *b) {
    for (uint32_t i = 0; i < MAX_LEN; i++) {
        char t = a[i];
        a[i] = b[i];
        b[i] = t;
    }
}

/*
 * load reads the configuration once per instance, when it starts (SLUICE_START below; natively, in
 * the first request): a bad one fails the filter's load with a message saying what is wrong.
 */
static void load(void) {
    sluice_str raw = sluice_config(), none = {0, 0};
    if (!sluice_copy(cfg, sizeof cfg, raw)) sluice_fail("apikey: config: larger than 8 KiB", none);
    sluice_str doc = {cfg, raw.len};
    sluice_str hv = sluice_json_get(doc, "header"), h = sluice_json_string(hv);
    if (hv.ptr && !h.ptr) sluice_fail("apikey: config: header must be a string", none);
    if (h.ptr && !sluice_copy(header, MAX_LEN, h)) sluice_fail("apikey: config: header too long", none);
    sluice_str k, v, obj = sluice_json_get(doc, "keys");
    uint32_t pos = 0;
    while (obj.ptr && sluice_json_member(obj, &pos, &k, &v)) {
        if (nkeys == MAX_KEYS) sluice_fail("apikey: config: more than 32 keys", none);
        /* The keys are credentials: the messages never show them. */
        if (!sluice_json_string(v).ptr) sluice_fail("apikey: consumer names must be strings", none);
        if (!sluice_copy(keys[nkeys], MAX_LEN, k) || !sluice_copy(consumers[nkeys], MAX_LEN, sluice_json_string(v)))
            sluice_fail("apikey: config: a key or consumer name is longer than 127 bytes", none);
        nkeys++;
    }
    /* Sorted by key, so req_ctx (index + 1) means the same consumer in every language's build. */
    for (uint32_t i = 1; i < nkeys; i++)
        for (uint32_t j = i; j > 0 && cmp(keys[j - 1], keys[j]) > 0; j--) {
            swap(keys[j - 1], keys[j]);
            swap(consumers[j - 1], consumers[j]);
        }
    loaded = 1;
}

SLUICE_START(load)

SLUICE_EXPORT("handle_request") uint64_t handle_request(void) {
    if (!loaded) load();
    sluice_str got = sluice_header_get(SLUICE_REQUEST, header);
    for (uint32_t i = 0; got.ptr && i < nkeys; i++) {
        if (sluice_str_eq(got, keys[i])) {
            sluice_header_remove(SLUICE_REQUEST, header);
            sluice_header_set(SLUICE_REQUEST, "x-consumer", consumers[i]);
            return SLUICE_CONTINUE(i + 1);
        }
    }
    sluice_set_status(401);
    sluice_header_set(SLUICE_RESPONSE, "content-type", "text/plain; charset=utf-8");
    sluice_header_set(SLUICE_RESPONSE, "www-authenticate", "ApiKey");
    sluice_body_write_str(SLUICE_RESPONSE, "invalid API key\n");
    return SLUICE_RESPOND;
}

SLUICE_EXPORT("handle_response") void handle_response(uint32_t req_ctx, uint32_t is_error) {
    if (is_error || req_ctx == 0 || req_ctx > nkeys) return;
    sluice_header_set(SLUICE_RESPONSE, "x-consumer", consumers[req_ctx - 1]);
}
