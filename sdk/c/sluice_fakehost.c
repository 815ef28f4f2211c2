/* The fake host declared in sluice_fakehost.h: implements the sluice_host_* imports natively. */
#include "sluice_fakehost.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sluice_filter.h"

struct sluice_fake_host sluice_fake;

void sluice_fake_reset(void) {
    memset(&sluice_fake, 0, sizeof sluice_fake);
    strcpy(sluice_fake.method, "GET");
    strcpy(sluice_fake.uri, "/");
    strcpy(sluice_fake.protocol, "HTTP/1.1");
    strcpy(sluice_fake.source_addr, "127.0.0.1:40000");
    sluice_fake.status = 200;
}

void sluice_fake_phase(void) {
    sluice_fake.req_body.written = 0;
    sluice_fake.resp_body.written = 0;
    sluice_fake.resp_body.read = 0;
}

static sluice_fake_headers *headers(uint32_t kind) {
    assert(kind <= 1 && "fake host: trailers are not supported");
    return kind == 0 ? &sluice_fake.req_headers : &sluice_fake.resp_headers;
}

static sluice_fake_body *body(uint32_t kind) { return kind == 0 ? &sluice_fake.req_body : &sluice_fake.resp_body; }

static void add(uint32_t kind, const char *name, uint32_t nlen, const char *value, uint32_t vlen) {
    sluice_fake_headers *h = headers(kind);
    assert(h->n < SLUICE_FAKE_FIELDS && nlen < 128 && vlen < 1024);
    sluice_fake_field *f = &h->fields[h->n++];
    memcpy(f->name, name, nlen);
    f->name[nlen] = 0;
    memcpy(f->value, value, vlen);
    f->value[vlen] = 0;
}

void sluice_fake_add_header(uint32_t kind, const char *name, const char *value) {
    add(kind, name, (uint32_t)strlen(name), value, (uint32_t)strlen(value));
}

const char *sluice_fake_header(uint32_t kind, const char *name) {
    sluice_fake_headers *h = headers(kind);
    for (uint32_t i = 0; i < h->n; i++)
        if (strcasecmp(h->fields[i].name, name) == 0) return h->fields[i].value;
    return NULL;
}

void sluice_fake_set_body(uint32_t kind, const char *s) {
    sluice_fake_body *b = body(kind);
    b->len = (uint32_t)strlen(s);
    assert(b->len <= SLUICE_FAKE_BODY);
    memcpy(b->data, s, b->len);
    b->read = 0;
}

static uint32_t put(uint8_t *buf, uint32_t limit, const char *v, uint32_t n) {
    if (n <= limit) memcpy(buf, v, n);
    return n;
}

static uint32_t put_str(uint8_t *buf, uint32_t limit, const char *v) { return put(buf, limit, v, (uint32_t)strlen(v)); }

uint32_t sluice_host_enable_features(uint32_t f) { return sluice_fake.enabled |= f & 3; }
uint32_t sluice_host_get_config(uint8_t *b, uint32_t l) { return put_str(b, l, sluice_fake.config); }
void sluice_host_log(int32_t level, const uint8_t *m, uint32_t n) { fprintf(stderr, "log %d: %.*s\n", level, (int)n, m); }
uint32_t sluice_host_log_enabled(int32_t level) { return level >= 0; }
uint32_t sluice_host_get_method(uint8_t *b, uint32_t l) { return put_str(b, l, sluice_fake.method); }
void sluice_host_set_method(const uint8_t *p, uint32_t n) { snprintf(sluice_fake.method, sizeof sluice_fake.method, "%.*s", (int)n, p); }
uint32_t sluice_host_get_uri(uint8_t *b, uint32_t l) { return put_str(b, l, sluice_fake.uri[0] ? sluice_fake.uri : "/"); }
void sluice_host_set_uri(const uint8_t *p, uint32_t n) { snprintf(sluice_fake.uri, sizeof sluice_fake.uri, "%.*s", (int)n, p); }
uint32_t sluice_host_get_protocol_version(uint8_t *b, uint32_t l) { return put_str(b, l, sluice_fake.protocol); }
uint32_t sluice_host_get_source_addr(uint8_t *b, uint32_t l) { return put_str(b, l, sluice_fake.source_addr); }

/* list writes items as a NUL-terminated sequence if it fits and returns count<<32|len. */
static uint64_t list(uint8_t *buf, uint32_t limit, const char **items, uint32_t n) {
    uint32_t total = 0;
    for (uint32_t i = 0; i < n; i++) total += (uint32_t)strlen(items[i]) + 1;
    if (n && total <= limit) {
        uint32_t off = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t l = (uint32_t)strlen(items[i]) + 1;
            memcpy(buf + off, items[i], l); /* copies the NUL too */
            off += l;
        }
    }
    return n ? ((uint64_t)n << 32 | total) : 0;
}

uint64_t sluice_host_get_header_names(uint32_t kind, uint8_t *buf, uint32_t limit) {
    static char lower[SLUICE_FAKE_FIELDS][128];
    const char *items[SLUICE_FAKE_FIELDS];
    uint32_t n = 0;
    sluice_fake_headers *h = headers(kind);
    for (uint32_t i = 0; i < h->n; i++) {
        char tmp[128];
        uint32_t j = 0;
        for (; h->fields[i].name[j]; j++) {
            char c = h->fields[i].name[j];
            tmp[j] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        tmp[j] = 0;
        int seen = 0;
        for (uint32_t k = 0; k < n; k++) seen |= strcmp(lower[k], tmp) == 0;
        if (!seen) {
            strcpy(lower[n], tmp);
            items[n] = lower[n];
            n++;
        }
    }
    return list(buf, limit, items, n);
}

uint64_t sluice_host_get_header_values(uint32_t kind, const uint8_t *name, uint32_t nlen, uint8_t *buf,
                                       uint32_t limit) {
    const char *items[SLUICE_FAKE_FIELDS];
    uint32_t n = 0;
    sluice_fake_headers *h = headers(kind);
    for (uint32_t i = 0; i < h->n; i++)
        if (strlen(h->fields[i].name) == nlen && strncasecmp(h->fields[i].name, (const char *)name, nlen) == 0)
            items[n++] = h->fields[i].value;
    return list(buf, limit, items, n);
}

void sluice_host_remove_header(uint32_t kind, const uint8_t *name, uint32_t nlen) {
    sluice_fake_headers *h = headers(kind);
    uint32_t kept = 0;
    for (uint32_t i = 0; i < h->n; i++) {
        if (strlen(h->fields[i].name) == nlen && strncasecmp(h->fields[i].name, (const char *)name, nlen) == 0) continue;
        h->fields[kept++] = h->fields[i];
    }
    h->n = kept;
}

void sluice_host_add_header_value(uint32_t kind, const uint8_t *name, uint32_t nlen, const uint8_t *value,
                                  uint32_t vlen) {
    add(kind, (const char *)name, nlen, (const char *)value, vlen);
}

void sluice_host_set_header_value(uint32_t kind, const uint8_t *name, uint32_t nlen, const uint8_t *value,
                                  uint32_t vlen) {
    sluice_host_remove_header(kind, name, nlen);
    add(kind, (const char *)name, nlen, (const char *)value, vlen);
}

uint64_t sluice_host_read_body(uint32_t kind, uint8_t *buf, uint32_t limit) {
    assert(limit > 0 && "fake host: read_body with buf_limit 0");
    sluice_fake_body *b = body(kind);
    uint32_t n = b->len - b->read;
    if (n > limit) n = limit;
    memcpy(buf, b->data + b->read, n);
    b->read += n;
    return ((uint64_t)(b->read >= b->len) << 32) | n;
}

void sluice_host_write_body(uint32_t kind, const uint8_t *p, uint32_t n) {
    sluice_fake_body *b = body(kind);
    if (!b->written) {
        b->len = 0;
        b->written = 1;
    }
    assert(b->len + n <= SLUICE_FAKE_BODY);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

uint32_t sluice_host_get_status_code(void) { return sluice_fake.status; }
void sluice_host_set_status_code(uint32_t code) { sluice_fake.status = code; }
