/* Native unit tests of the C examples against the fake host:
 *   cc -I ../../../sdk/c -o test test.c ../../../sdk/c/sluice_fakehost.c && ./test
 * Each filter is included under its own prefix so both link into one program. */
#include <stdio.h>
#include <string.h>

#include "sluice_fakehost.h"

#define handle_request apikey_request
#define handle_response apikey_response
#define load apikey_load
#define cfg apikey_cfg
#define loaded apikey_loaded
#include "apikey.c"
#undef handle_request
#undef handle_response
#undef load
#undef cfg
#undef loaded

#define handle_request sec_request
#define handle_response sec_response
#include "secheaders.c"

static int failures;
#define CHECK(cond)                                                     \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "%s:%d: FAIL %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                 \
        }                                                               \
    } while (0)

static const char *hv(uint32_t kind, const char *name) {
    const char *v = sluice_fake_header(kind, name);
    return v ? v : "";
}

static void reset_apikey(void) {
    sluice_fake_reset();
    strcpy(sluice_fake.config, "{\"header\":\"X-API-Key\",\"keys\":{\"beta\":\"team-b\",\"alpha\":\"team-a\"}}");
}

int main(void) {
    reset_apikey();
    CHECK(apikey_request() == SLUICE_RESPOND);
    CHECK(sluice_fake.status == 401);
    CHECK(strcmp((char *)sluice_fake.resp_body.data, "invalid API key\n") == 0);

    reset_apikey();
    sluice_fake_add_header(SLUICE_REQUEST, "X-Api-Key", "gamma");
    CHECK(apikey_request() == SLUICE_RESPOND);

    reset_apikey();
    sluice_fake_add_header(SLUICE_REQUEST, "X-Api-Key", "beta");
    uint64_t r = apikey_request();
    CHECK(r == SLUICE_CONTINUE(2));
    CHECK(strcmp(hv(SLUICE_REQUEST, "x-consumer"), "team-b") == 0);
    CHECK(sluice_fake_header(SLUICE_REQUEST, "x-api-key") == NULL);
    sluice_fake_phase();
    apikey_response((uint32_t)(r >> 32), 0);
    CHECK(strcmp(hv(SLUICE_RESPONSE, "x-consumer"), "team-b") == 0);

    sluice_fake_reset();
    sluice_fake_add_header(SLUICE_RESPONSE, "Server", "nginx/1.2");
    sluice_fake_add_header(SLUICE_RESPONSE, "Referrer-Policy", "origin");
    CHECK(sec_request() == SLUICE_CONTINUE(0));
    sec_response(0, 0);
    CHECK(sluice_fake_header(SLUICE_RESPONSE, "server") == NULL);
    CHECK(strcmp(hv(SLUICE_RESPONSE, "x-content-type-options"), "nosniff") == 0);
    CHECK(strcmp(hv(SLUICE_RESPONSE, "referrer-policy"), "origin") == 0); /* upstream's value kept */

    sluice_str doc = {"{\"a\": [1, \"x\", {\"b\": 2}], \"n\": 42}", 33};
    uint32_t n = 0, pos = 0;
    sluice_str it;
    CHECK(sluice_json_u32(sluice_json_get(doc, "n"), &n) && n == 42);
    int items = 0;
    while (sluice_json_item(sluice_json_get(doc, "a"), &pos, &it)) items++;
    CHECK(items == 3);

    if (failures) return 1;
    printf("ok\n");
    return 0;
}
