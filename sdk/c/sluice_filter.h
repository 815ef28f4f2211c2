/*
 * sluice_filter.h: write Sluice (http-wasm) gateway filters in C.
 *
 * Header-only. Build a filter with clang, freestanding or against wasi-libc:
 *
 *   clang --target=wasm32 -O2 -nostdlib -fno-builtin -Wl,--no-entry -I sdk/c -o f.wasm f.c
 *   clang --target=wasm32-wasi -mexec-model=reactor -O2 -I sdk/c -o f.wasm f.c
 *
 * A filter defines the two exports with the SLUICE_EXPORT macro:
 *
 *   SLUICE_EXPORT("handle_request") uint64_t handle_request(void) {
 *       sluice_header_set(SLUICE_REQUEST, "x-hello", "world");
 *       return SLUICE_CONTINUE(0);
 *   }
 *   SLUICE_EXPORT("handle_response") void handle_response(uint32_t req_ctx, uint32_t is_error) {}
 *
 * Getters return a sluice_str that views one static scratch buffer: it is valid until the next
 * getter call. Copy what you keep. Values larger than SLUICE_SCRATCH_SIZE (define it before
 * including to change it; default 16 KiB) are reported as not found / empty, never truncated.
 *
 * Compiled for anything other than wasm (a native unit test), the host functions are plain
 * externs: link sluice_fakehost.c to get an in-process fake host.
 */
#ifndef SLUICE_FILTER_H
#define SLUICE_FILTER_H

#include <stddef.h>
#include <stdint.h>

#ifndef SLUICE_SCRATCH_SIZE
#define SLUICE_SCRATCH_SIZE 16384
#endif

#ifdef __wasm__
#define SLUICE_IMPORT(name) __attribute__((import_module("http_handler"), import_name(name)))
#define SLUICE_EXPORT(name) __attribute__((export_name(name)))
#else
#define SLUICE_IMPORT(name)
#define SLUICE_EXPORT(name)
#endif

/* handle_request results. */
#define SLUICE_RESPOND ((uint64_t)0)
#define SLUICE_CONTINUE(req_ctx) (((uint64_t)(uint32_t)(req_ctx) << 32) | 1)

/* Header kinds (body kinds use the first two). */
#define SLUICE_REQUEST 0u
#define SLUICE_RESPONSE 1u
#define SLUICE_REQUEST_TRAILERS 2u
#define SLUICE_RESPONSE_TRAILERS 3u

/* Features for sluice_enable_features. */
#define SLUICE_FEATURE_BUFFER_REQUEST 1u
#define SLUICE_FEATURE_BUFFER_RESPONSE 2u
#define SLUICE_FEATURE_TRAILERS 4u

/* Log levels. */
#define SLUICE_LOG_DEBUG (-1)
#define SLUICE_LOG_INFO 0
#define SLUICE_LOG_WARN 1
#define SLUICE_LOG_ERROR 2

/* ---- The raw ABI: module "http_handler". See sdk/ABI.md. ---- */
SLUICE_IMPORT("enable_features") uint32_t sluice_host_enable_features(uint32_t features);
SLUICE_IMPORT("get_config") uint32_t sluice_host_get_config(uint8_t *buf, uint32_t limit);
SLUICE_IMPORT("log") void sluice_host_log(int32_t level, const uint8_t *msg, uint32_t len);
SLUICE_IMPORT("log_enabled") uint32_t sluice_host_log_enabled(int32_t level);
SLUICE_IMPORT("get_method") uint32_t sluice_host_get_method(uint8_t *buf, uint32_t limit);
SLUICE_IMPORT("set_method") void sluice_host_set_method(const uint8_t *p, uint32_t len);
SLUICE_IMPORT("get_uri") uint32_t sluice_host_get_uri(uint8_t *buf, uint32_t limit);
SLUICE_IMPORT("set_uri") void sluice_host_set_uri(const uint8_t *p, uint32_t len);
SLUICE_IMPORT("get_protocol_version") uint32_t sluice_host_get_protocol_version(uint8_t *buf, uint32_t limit);
SLUICE_IMPORT("get_source_addr") uint32_t sluice_host_get_source_addr(uint8_t *buf, uint32_t limit);
SLUICE_IMPORT("get_header_names") uint64_t sluice_host_get_header_names(uint32_t kind, uint8_t *buf, uint32_t limit);
SLUICE_IMPORT("get_header_values")
uint64_t sluice_host_get_header_values(uint32_t kind, const uint8_t *name, uint32_t name_len, uint8_t *buf,
                                       uint32_t limit);
SLUICE_IMPORT("set_header_value")
void sluice_host_set_header_value(uint32_t kind, const uint8_t *name, uint32_t name_len, const uint8_t *value,
                                  uint32_t value_len);
SLUICE_IMPORT("add_header_value")
void sluice_host_add_header_value(uint32_t kind, const uint8_t *name, uint32_t name_len, const uint8_t *value,
                                  uint32_t value_len);
SLUICE_IMPORT("remove_header") void sluice_host_remove_header(uint32_t kind, const uint8_t *name, uint32_t name_len);
SLUICE_IMPORT("read_body") uint64_t sluice_host_read_body(uint32_t kind, uint8_t *buf, uint32_t limit);
SLUICE_IMPORT("write_body") void sluice_host_write_body(uint32_t kind, const uint8_t *p, uint32_t len);
SLUICE_IMPORT("get_status_code") uint32_t sluice_host_get_status_code(void);
SLUICE_IMPORT("set_status_code") void sluice_host_set_status_code(uint32_t code);

/* ---- Helpers ---- */

/* A byte range. ptr == NULL means "absent" (a present but empty value has ptr != NULL, len 0). */
typedef struct {
    const char *ptr;
    uint32_t len;
} sluice_str;

static uint8_t sluice_scratch[SLUICE_SCRATCH_SIZE];

static inline uint32_t sluice_strlen(const char *s) {
    uint32_t n = 0;
    while (s[n]) n++;
    return n;
}

static inline int sluice_eq(sluice_str a, const char *b, uint32_t blen) {
    if (!a.ptr || a.len != blen) return 0;
    for (uint32_t i = 0; i < blen; i++)
        if (a.ptr[i] != b[i]) return 0;
    return 1;
}

/* sluice_str_eq reports whether a equals the C string b. */
static inline int sluice_str_eq(sluice_str a, const char *b) { return sluice_eq(a, b, sluice_strlen(b)); }

static inline sluice_str sluice_get_(uint32_t (*get)(uint8_t *, uint32_t)) {
    uint32_t n = get(sluice_scratch, SLUICE_SCRATCH_SIZE);
    sluice_str s = {0, 0};
    if (n <= SLUICE_SCRATCH_SIZE) {
        s.ptr = (const char *)sluice_scratch;
        s.len = n;
    }
    return s;
}

/* The filter's configuration (the HCL config object as JSON); empty if none. */
static inline sluice_str sluice_config(void) { return sluice_get_(sluice_host_get_config); }
static inline sluice_str sluice_method(void) { return sluice_get_(sluice_host_get_method); }
/* The URI as received: path and ?query, percent-encoded. */
static inline sluice_str sluice_uri(void) { return sluice_get_(sluice_host_get_uri); }
static inline sluice_str sluice_protocol_version(void) { return sluice_get_(sluice_host_get_protocol_version); }
/* The client's "ip:port". */
static inline sluice_str sluice_source_addr(void) { return sluice_get_(sluice_host_get_source_addr); }

static inline void sluice_set_method(const char *m) { sluice_host_set_method((const uint8_t *)m, sluice_strlen(m)); }
static inline void sluice_set_uri(const char *u) { sluice_host_set_uri((const uint8_t *)u, sluice_strlen(u)); }

/* The first value of header name (case-insensitive) of kind, or {NULL, 0}. */
static inline sluice_str sluice_header_get(uint32_t kind, const char *name) {
    uint64_t cl = sluice_host_get_header_values(kind, (const uint8_t *)name, sluice_strlen(name), sluice_scratch,
                                                SLUICE_SCRATCH_SIZE);
    sluice_str s = {0, 0};
    uint32_t len = (uint32_t)cl;
    if ((cl >> 32) == 0 || len > SLUICE_SCRATCH_SIZE) return s;
    s.ptr = (const char *)sluice_scratch;
    while (s.len < len && sluice_scratch[s.len] != 0) s.len++;
    return s;
}

/* Every value (or, with name NULL, every name) as a NUL-terminated list; *count gets the count. */
static inline sluice_str sluice_header_list(uint32_t kind, const char *name, uint32_t *count) {
    uint64_t cl = name ? sluice_host_get_header_values(kind, (const uint8_t *)name, sluice_strlen(name),
                                                       sluice_scratch, SLUICE_SCRATCH_SIZE)
                       : sluice_host_get_header_names(kind, sluice_scratch, SLUICE_SCRATCH_SIZE);
    sluice_str s = {0, 0};
    *count = 0;
    if ((uint32_t)cl > SLUICE_SCRATCH_SIZE) return s;
    *count = (uint32_t)(cl >> 32);
    s.ptr = (const char *)sluice_scratch;
    s.len = (uint32_t)cl;
    return s;
}

static inline int sluice_header_has(uint32_t kind, const char *name) {
    return (sluice_host_get_header_values(kind, (const uint8_t *)name, sluice_strlen(name), 0, 0) >> 32) > 0;
}

static inline void sluice_header_set_n(uint32_t kind, const char *name, const char *value, uint32_t value_len) {
    sluice_host_set_header_value(kind, (const uint8_t *)name, sluice_strlen(name), (const uint8_t *)value, value_len);
}
static inline void sluice_header_set(uint32_t kind, const char *name, const char *value) {
    sluice_header_set_n(kind, name, value, sluice_strlen(value));
}
static inline void sluice_header_add(uint32_t kind, const char *name, const char *value) {
    sluice_host_add_header_value(kind, (const uint8_t *)name, sluice_strlen(name), (const uint8_t *)value,
                                 sluice_strlen(value));
}
static inline void sluice_header_remove(uint32_t kind, const char *name) {
    sluice_host_remove_header(kind, (const uint8_t *)name, sluice_strlen(name));
}

/* Reads up to cap bytes of the body into buf; *eof is set when the body is exhausted. */
static inline uint32_t sluice_body_read(uint32_t kind, uint8_t *buf, uint32_t cap, int *eof) {
    uint64_t el = sluice_host_read_body(kind, buf, cap);
    *eof = (int)(el >> 32);
    return (uint32_t)el;
}
/* Appends to the body; the first write of a phase replaces it. */
static inline void sluice_body_write(uint32_t kind, const void *p, uint32_t len) {
    sluice_host_write_body(kind, (const uint8_t *)p, len);
}
static inline void sluice_body_write_str(uint32_t kind, const char *s) { sluice_body_write(kind, s, sluice_strlen(s)); }

static inline uint32_t sluice_status(void) { return sluice_host_get_status_code(); }
static inline void sluice_set_status(uint32_t code) { sluice_host_set_status_code(code); }
static inline uint32_t sluice_enable_features(uint32_t f) { return sluice_host_enable_features(f); }
static inline void sluice_log(int32_t level, const char *msg) {
    sluice_host_log(level, (const uint8_t *)msg, sluice_strlen(msg));
}

/*
 * SLUICE_START(fn) runs fn once per instance when it starts, before any request: exported as the
 * reactor's _initialize when freestanding, a constructor (which wasi-libc's _initialize runs)
 * against wasi-libc, and a plain unused function natively. Read and check the configuration there:
 * a bad one then fails the filter's load, and `sluice validate` / `sluice run` show why.
 */
#if defined(__wasi__)
#define SLUICE_START(fn) __attribute__((constructor)) static void sluice_start_(void) { fn(); }
#elif defined(__wasm__)
#define SLUICE_START(fn) SLUICE_EXPORT("_initialize") void sluice_start_(void) { fn(); }
#else
#define SLUICE_START(fn) void sluice_start_(void) { fn(); }
#endif

/*
 * Logs msg followed by detail (which may be {NULL, 0}) at error level, then traps. Called from the
 * SLUICE_START function, it fails the filter's load and the gateway quotes the message in its
 * diagnostic; called in a request, it fails that request (500, or on_error = "skip").
 */
__attribute__((noreturn)) static inline void sluice_fail(const char *msg, sluice_str detail) {
    static char buf[512];
    uint32_t n = 0;
    for (const char *p = msg; *p && n < sizeof buf; p++) buf[n++] = *p;
    for (uint32_t i = 0; i < detail.len && n < sizeof buf; i++) buf[n++] = detail.ptr[i];
    sluice_host_log(SLUICE_LOG_ERROR, (const uint8_t *)buf, n);
    __builtin_trap();
}

/* ---- A JSON reader for flat configuration, over views (no allocation, escapes not decoded). ---- */

static inline uint32_t sluice_json_ws(sluice_str d, uint32_t i) {
    while (i < d.len && (d.ptr[i] == ' ' || d.ptr[i] == '\t' || d.ptr[i] == '\n' || d.ptr[i] == '\r')) i++;
    return i;
}

/* Index after the JSON value starting at i, or 0 when it is malformed. */
static inline uint32_t sluice_json_end(sluice_str d, uint32_t i) {
    if (i >= d.len) return 0;
    char c = d.ptr[i];
    if (c == '"') {
        for (i++; i < d.len; i++) {
            if (d.ptr[i] == '\\') i++;
            else if (d.ptr[i] == '"') return i + 1;
        }
        return 0;
    }
    if (c == '{' || c == '[') {
        uint32_t depth = 0;
        for (; i < d.len; i++) {
            c = d.ptr[i];
            if (c == '"') {
                uint32_t e = sluice_json_end(d, i);
                if (!e) return 0;
                i = e - 1;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0) return i + 1;
            }
        }
        return 0;
    }
    while (i < d.len && d.ptr[i] != ',' && d.ptr[i] != '}' && d.ptr[i] != ']' && d.ptr[i] != ' ' &&
           d.ptr[i] != '\t' && d.ptr[i] != '\n' && d.ptr[i] != '\r')
        i++;
    return i;
}

/*
 * Iterates an object's members: start with *pos = 0; each call sets *key (the raw text between the
 * quotes) and *val (the value's raw text) and returns 1, or returns 0 at the end.
 */
static inline int sluice_json_member(sluice_str obj, uint32_t *pos, sluice_str *key, sluice_str *val) {
    uint32_t i = *pos;
    if (i == 0) {
        i = sluice_json_ws(obj, 0);
        if (i >= obj.len || obj.ptr[i] != '{') return 0;
        i++;
    }
    i = sluice_json_ws(obj, i);
    if (i < obj.len && obj.ptr[i] == ',') i = sluice_json_ws(obj, i + 1);
    if (i >= obj.len || obj.ptr[i] != '"') return 0;
    uint32_t kend = sluice_json_end(obj, i);
    if (!kend) return 0;
    key->ptr = obj.ptr + i + 1;
    key->len = kend - i - 2;
    i = sluice_json_ws(obj, kend);
    if (i >= obj.len || obj.ptr[i] != ':') return 0;
    i = sluice_json_ws(obj, i + 1);
    uint32_t vend = sluice_json_end(obj, i);
    if (!vend || vend == i) return 0;
    val->ptr = obj.ptr + i;
    val->len = vend - i;
    *pos = vend;
    return 1;
}

/* Iterates an array's items, like sluice_json_member. */
static inline int sluice_json_item(sluice_str arr, uint32_t *pos, sluice_str *val) {
    uint32_t i = *pos;
    if (i == 0) {
        i = sluice_json_ws(arr, 0);
        if (i >= arr.len || arr.ptr[i] != '[') return 0;
        i++;
    }
    i = sluice_json_ws(arr, i);
    if (i < arr.len && arr.ptr[i] == ',') i = sluice_json_ws(arr, i + 1);
    if (i >= arr.len || arr.ptr[i] == ']') return 0;
    uint32_t vend = sluice_json_end(arr, i);
    if (!vend || vend == i) return 0;
    val->ptr = arr.ptr + i;
    val->len = vend - i;
    *pos = vend;
    return 1;
}

/* The raw value of member key of obj, or {NULL, 0}. */
static inline sluice_str sluice_json_get(sluice_str obj, const char *key) {
    uint32_t pos = 0;
    sluice_str k, v, none = {0, 0};
    while (sluice_json_member(obj, &pos, &k, &v))
        if (sluice_str_eq(k, key)) return v;
    return none;
}

/* The contents of a JSON string value (between the quotes, escapes kept), or {NULL, 0}. */
static inline sluice_str sluice_json_string(sluice_str v) {
    sluice_str s = {0, 0};
    if (v.ptr && v.len >= 2 && v.ptr[0] == '"' && v.ptr[v.len - 1] == '"') {
        s.ptr = v.ptr + 1;
        s.len = v.len - 2;
    }
    return s;
}

/* Parses a non-negative integer value; returns 0 if v is not one. */
static inline int sluice_json_u32(sluice_str v, uint32_t *out) {
    uint32_t n = 0;
    if (!v.ptr || v.len == 0) return 0;
    for (uint32_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9') return 0;
        n = n * 10 + (uint32_t)(v.ptr[i] - '0');
    }
    *out = n;
    return 1;
}

/* Copies s into dst (capacity cap, NUL-terminated); returns 0 if it does not fit. */
static inline int sluice_copy(char *dst, uint32_t cap, sluice_str s) {
    if (!s.ptr || s.len + 1 > cap) return 0;
    for (uint32_t i = 0; i < s.len; i++) dst[i] = s.ptr[i];
    dst[s.len] = 0;
    return 1;
}

#endif
