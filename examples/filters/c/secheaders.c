/*
 * secheaders: a response header injector. Sets the configured headers on every response (security
 * headers by default) unless the upstream already set them, and removes headers that leak
 * implementation details (server, x-powered-by by default).
 *
 * Config: {"set": {"<name>": "<value>", ...}, "remove": ["server", "x-powered-by"]}
 * Without either member, the defaults below apply.
 */
#include "sluice_filter.h"

static char cfg[8192];
static uint32_t cfg_len;
static int loaded;

static const char *defaults =
    "{\"set\":{\"strict-transport-security\":\"max-age=63072000; includeSubDomains\","
    "\"x-content-type-options\":\"nosniff\",\"referrer-policy\":\"no-referrer\"},"
    "\"remove\":[\"server\",\"x-powered-by\"]}";

static void load(void) {
    sluice_str raw = sluice_config();
    /* No config, or an object naming neither "set" nor "remove" (e.g. {}): the defaults apply. */
    if (!sluice_json_get(raw, "set").ptr && !sluice_json_get(raw, "remove").ptr) {
        raw.ptr = defaults;
        raw.len = sluice_strlen(defaults);
    }
    if (!sluice_copy(cfg, sizeof cfg, raw)) __builtin_trap();
    cfg_len = raw.len;
    loaded = 1;
}

SLUICE_EXPORT("handle_request") uint64_t handle_request(void) {
    if (!loaded) load();
    return SLUICE_CONTINUE(0);
}

SLUICE_EXPORT("handle_response") void handle_response(uint32_t req_ctx, uint32_t is_error) {
    (void)req_ctx;
    if (is_error) return;
    sluice_str doc = {cfg, cfg_len}, k, v, item;
    char name[128], value[1024];
    uint32_t pos = 0;
    sluice_str set = sluice_json_get(doc, "set");
    while (set.ptr && sluice_json_member(set, &pos, &k, &v)) {
        if (!sluice_copy(name, sizeof name, k) || !sluice_copy(value, sizeof value, sluice_json_string(v))) continue;
        if (!sluice_header_has(SLUICE_RESPONSE, name)) sluice_header_set(SLUICE_RESPONSE, name, value);
    }
    pos = 0;
    sluice_str rm = sluice_json_get(doc, "remove");
    while (rm.ptr && sluice_json_item(rm, &pos, &item))
        if (sluice_copy(name, sizeof name, sluice_json_string(item))) sluice_header_remove(SLUICE_RESPONSE, name);
}
