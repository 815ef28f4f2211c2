// tck_command is a test guest shaped as TinyGo and wasi-libc build WASI commands: its `_start`
// (wasi-libc's, which runs main) asks for the trailers feature, and handle_request and
// handle_response are exported functions called after `_start` returned. It answers the cases of
// the public http-wasm TCK (the same ids and conventions as testdata/goguest) and a "trailers"
// case. Built with: clang --target=wasm32-wasi -O2 -o tck_command.wasm tck_command.c
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("http_handler"), import_name(#name)))
#define EXPORT(name) __attribute__((export_name(#name)))

IMPORT(enable_features) uint32_t enable_features(uint32_t);
IMPORT(get_method) uint32_t get_method(char *, uint32_t);
IMPORT(set_method) void set_method(const char *, uint32_t);
IMPORT(get_uri) uint32_t get_uri(char *, uint32_t);
IMPORT(set_uri) void set_uri(const char *, uint32_t);
IMPORT(get_protocol_version) uint32_t get_protocol_version(char *, uint32_t);
IMPORT(get_source_addr) uint32_t get_source_addr(char *, uint32_t);
IMPORT(get_header_names) uint64_t get_header_names(uint32_t, char *, uint32_t);
IMPORT(get_header_values) uint64_t get_header_values(uint32_t, const char *, uint32_t, char *, uint32_t);
IMPORT(set_header_value) void set_header_value(uint32_t, const char *, uint32_t, const char *, uint32_t);
IMPORT(add_header_value) void add_header_value(uint32_t, const char *, uint32_t, const char *, uint32_t);
IMPORT(remove_header) void remove_header(uint32_t, const char *, uint32_t);
IMPORT(read_body) uint64_t read_body(uint32_t, char *, uint32_t);
IMPORT(write_body) void write_body(uint32_t, const char *, uint32_t);
IMPORT(set_status_code) void set_status_code(uint32_t);

enum { REQ = 0, RESP = 1, REQ_TRAILERS = 2, RESP_TRAILERS = 3 };
enum { BUFFER_RESPONSE = 2, TRAILERS = 4 };

static char buf[16384];
static char id[256];
static uint32_t features;

static int has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static void set(uint32_t kind, const char *name, const char *value) {
	set_header_value(kind, name, strlen(name), value, strlen(value));
}

static void fail(const char *msg) {
	set_status_code(500);
	set(RESP, "x-httpwasm-tck-failed", msg);
}

// header1 returns the first value of a header in buf ("" if none).
static const char *header1(uint32_t kind, const char *name) {
	uint64_t cl = get_header_values(kind, name, strlen(name), buf, sizeof buf);
	if (cl >> 32 == 0 || (uint32_t)cl > sizeof buf) return "";
	return buf;
}

// values returns the values of a header in buf, NUL-separated, and their total length.
static uint32_t values(uint32_t kind, const char *name) {
	uint64_t cl = get_header_values(kind, name, strlen(name), buf, sizeof buf);
	return (uint32_t)cl > sizeof buf ? 0 : (uint32_t)cl;
}

static const char *get(uint32_t (*fn)(char *, uint32_t)) {
	uint32_t n = fn(buf, sizeof buf - 1);
	buf[n < sizeof buf ? n : 0] = 0;
	return buf;
}

static uint64_t tck(void) {
	const char *uri = NULL;
	char msg[512];
	if (strcmp(id, "get_protocol_version") == 0) {
		get(get_protocol_version);
		write_body(RESP, buf, strlen(buf));
	} else if (has_prefix(id, "get_method/")) {
		if (strcmp(get(get_method), id + strlen("get_method/")) != 0) {
			snprintf(msg, sizeof msg, "get_method: want %s, have %s", id + strlen("get_method/"), buf);
			fail(msg);
		}
	} else if (strcmp(id, "set_method") == 0) {
		set_method("POST", 4);
	} else if (has_prefix(id, "get_uri/") || has_prefix(id, "set_uri/")) {
		const char *which = id + strlen("get_uri/");
		if (strcmp(which, "simple") == 0) uri = "/simple";
		else if (strcmp(which, "simple/escaping") == 0) uri = "/simple%26clean";
		else if (strcmp(which, "query") == 0) uri = "/animal?name=panda";
		else uri = "/disney?name=chip%26dale";
		if (id[0] == 's') {
			set_uri(uri, strlen(uri));
		} else if (strcmp(get(get_uri), uri) != 0) {
			snprintf(msg, sizeof msg, "get_uri: want %s, have %s", uri, buf);
			fail(msg);
		}
	} else if (has_prefix(id, "get_header_values/request/")) {
		const char *which = id + strlen("get_header_values/request/");
		const char *key = "single-header", *want = "value";
		uint32_t want_len = 6;
		if (strcmp(which, "mixedcase-key") == 0) key = "Single-Header";
		else if (strcmp(which, "not-exists") == 0) key = "not-header", want = "", want_len = 0;
		else if (strcmp(which, "multiple-values") == 0) key = "multi-header", want = "value1\0value2", want_len = 14;
		uint32_t n = values(REQ, key);
		if (n != want_len || memcmp(buf, want, n) != 0) fail("get_header_values: unexpected values");
	} else if (strcmp(id, "get_header_names/request") == 0) {
		uint64_t cl = get_header_names(REQ, buf, sizeof buf);
		uint32_t n = (uint32_t)cl, found = 0;
		for (uint32_t i = 0; i < n && n <= sizeof buf; i += strlen(buf + i) + 1) {
			found += strcmp(buf + i, "a-header") == 0 || strcmp(buf + i, "b-header") == 0;
		}
		if (found != 2) fail("get_header_names/request: a-header or b-header not found");
	} else if (has_prefix(id, "set_header_value/request/") || has_prefix(id, "add_header_value/request/") ||
	           has_prefix(id, "remove_header/request/")) {
		const char *slash = strrchr(id, '/');
		snprintf(msg, sizeof msg, "%s-header", slash + 1);
		if (id[0] == 's') set(REQ, msg, "value");
		else if (id[0] == 'a') add_header_value(REQ, msg, strlen(msg), "value", 5);
		else remove_header(REQ, msg, strlen(msg));
	} else if (has_prefix(id, "read_body/request/")) {
		const char *which = id + strlen("read_body/request/");
		uint32_t want = strcmp(which, "small") == 0 ? 5 : strcmp(which, "medium") == 0 ? 2048
			: strcmp(which, "large") == 0 ? 4096 : strcmp(which, "xlarge") == 0 ? 5000 : 0;
		uint32_t total = 0;
		for (;;) {
			uint64_t r = read_body(REQ, buf, 1000); // several reads for the larger bodies
			for (uint32_t i = 0; i < (uint32_t)r; i++) total += buf[i] == 'a';
			if (r >> 32) break;
		}
		if (total != want) fail("read_body/request: wrong body");
	} else if (strcmp(id, "get_source_addr") == 0) {
		if (!has_prefix(get(get_source_addr), "127.0.0.1:") || strlen(buf) <= strlen("127.0.0.1:")) {
			snprintf(msg, sizeof msg, "get_source_addr: unexpected %s", buf);
			fail(msg);
		}
	} else if (strcmp(id, "trailers") == 0) {
		// Read the upstream's trailers in handle_response, which needs its body buffered.
		enable_features(BUFFER_RESPONSE);
		return 1;
	} else {
		fail("unknown x-httpwasm-tck-testid");
		return 0;
	}
	return 1;
}

EXPORT(handle_request) uint64_t handle_request(void) {
	strncpy(id, header1(REQ, "x-httpwasm-tck-testid"), sizeof id - 1);
	set(RESP, "x-httpwasm-tck-handled", "1");
	set(RESP, "x-features", features == (BUFFER_RESPONSE | 1 | TRAILERS) ? "all" : "some");
	return tck();
}

EXPORT(handle_response) void handle_response(uint32_t req_ctx, uint32_t is_error) {
	(void)req_ctx;
	if (is_error || strcmp(id, "trailers") != 0) return;
	// The upstream's trailer, seen by the guest; a trailer of the guest's own; one removed.
	set(RESP, "x-upstream-grpc-status", header1(RESP_TRAILERS, "grpc-status"));
	add_header_value(RESP_TRAILERS, "x-wasm-trailer", 14, "done", 4);
	remove_header(RESP_TRAILERS, "x-drop-me", 9);
	uint64_t cl = get_header_names(RESP_TRAILERS, buf, sizeof buf);
	char count[16];
	snprintf(count, sizeof count, "%u", (unsigned)(cl >> 32));
	set(RESP, "x-trailer-count", count);
}

int main(void) {
	features = enable_features(TRAILERS | BUFFER_RESPONSE | 1);
	if (!(features & TRAILERS)) {
		fprintf(stderr, "this guest needs the trailers feature\n");
		return 1;
	}
	return 0;
}
