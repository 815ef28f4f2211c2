/*
 * sluice_fakehost.h: an in-process fake of the Sluice host, for unit-testing a C filter natively:
 *
 *   cc -I sdk/c -o test test.c filter.c sdk/c/sluice_fakehost.c && ./test
 *
 * It follows the ABI (fit-or-nothing buffers, lower-case names, NUL-terminated lists) with fixed
 * capacities that are ample for tests.
 */
#ifndef SLUICE_FAKEHOST_H
#define SLUICE_FAKEHOST_H

#include <stdint.h>

#define SLUICE_FAKE_FIELDS 32
#define SLUICE_FAKE_BODY 16384

typedef struct {
    char name[128];
    char value[1024];
} sluice_fake_field;

typedef struct {
    sluice_fake_field fields[SLUICE_FAKE_FIELDS];
    uint32_t n;
} sluice_fake_headers;

typedef struct {
    uint8_t data[SLUICE_FAKE_BODY];
    uint32_t len, read;
    int written; /* written this phase: the first write replaces */
} sluice_fake_body;

struct sluice_fake_host {
    char config[4096];
    char method[16], uri[2048], protocol[16], source_addr[64];
    sluice_fake_headers req_headers, resp_headers;
    sluice_fake_body req_body, resp_body;
    uint32_t status, enabled;
};

extern struct sluice_fake_host sluice_fake;

/* Resets to GET / from 127.0.0.1:40000, status 200, nothing else. */
void sluice_fake_reset(void);
/* Starts a phase (handle_request or handle_response): body writes replace again. */
void sluice_fake_phase(void);
void sluice_fake_add_header(uint32_t kind, const char *name, const char *value);
/* The first value of a header or NULL. */
const char *sluice_fake_header(uint32_t kind, const char *name);
void sluice_fake_set_body(uint32_t kind, const char *body);

#endif
