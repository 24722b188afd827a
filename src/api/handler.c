/* REST request semantics (spec 4.2-4.4), independent of the HTTP server. */
#include <arpa/inet.h>
#include <errno.h>
#include <strings.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api.h"

struct api_caps api_caps_for(enum vm_state s)
{
	struct api_caps c = { 0 };
	switch (s) {
	case VM_STARTING: c.can_hard_stop = true; break;
	case VM_RUNNING: c.can_pause = c.can_stop = c.can_hard_stop = true; break;
	case VM_PAUSING:
	case VM_RESUMING: c.can_hard_stop = true; break;
	case VM_PAUSED: c.can_resume = c.can_hard_stop = true; break;
	case VM_STOPPED: c.can_start = true; break;
	case VM_STOPPING:
	case VM_ERROR: break;
	}
	return c;
}

static void set_body(struct api_response *r, unsigned status, const char *type, const char *text)
{
	r->status = status;
	r->content_type = type;
	r->body = text ? strdup(text) : NULL;
	r->len = r->body ? strlen(r->body) : 0;
	if (text && !r->body) {
		r->status = 500;
		r->content_type = NULL;
		r->len = 0;
	}
}

static void error_json(struct api_response *r, unsigned status, const char *msg)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(msg));
	set_body(r, status, API_JSON_TYPE, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static void get_state(const struct api_vm_ops *ops, struct api_response *r)
{
	enum vm_state s = ops->get_state(ops->opaque);
	struct api_caps c = api_caps_for(s);
	char buf[256];
#define B(x) ((x) ? "true" : "false")
	snprintf(buf, sizeof(buf),
		 "{\"canHardStop\":%s,\"canPause\":%s,\"canResume\":%s,\"canStart\":%s,\"canStop\":%s,\"state\":\"%s\"}",
		 B(c.can_hard_stop), B(c.can_pause), B(c.can_resume), B(c.can_start), B(c.can_stop), vm_state_name(s));
#undef B
	set_body(r, 200, API_JSON_TYPE, buf);
}

static void post_state(const struct api_vm_ops *ops, const char *body, size_t len, struct api_response *r)
{
	size_t i = 0;
	while (i < len && strchr(" \t\r\n", body[i]))
		i++;
	if (i == len) {
		error_json(r, 400, "EOF"); /* what Go's decoder says about an empty body */
		return;
	}
	if (memchr(body, 0, len)) {
		error_json(r, 400, "invalid character '\\x00' in request body");
		return;
	}
	json_tokener *tok = json_tokener_new_ex(32);
	if (!tok) {
		error_json(r, 500, "out of memory");
		return;
	}
	json_object *o = json_tokener_parse_ex(tok, body, (int)len);
	enum json_tokener_error je = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!o || je != json_tokener_success) {
		char msg[160];
		snprintf(msg, sizeof(msg), "invalid JSON: %s",
			 json_tokener_error_desc(je == json_tokener_continue ? json_tokener_error_parse_eof : je));
		json_object_put(o);
		error_json(r, 400, msg);
		return;
	}
	const char *want = "";
	json_object *st = NULL;
	if (json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "state", &st) &&
	    !json_object_is_type(st, json_type_null)) {
		if (!json_object_is_type(st, json_type_string)) {
			json_object_put(o);
			error_json(r, 400, "json: cannot unmarshal a non-string into field state of type string");
			return;
		}
		want = json_object_get_string(st);
	} else if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		error_json(r, 400, "json: cannot unmarshal a non-object into a state request");
		return;
	}
	static const struct { const char *name, *verb; } reqs[] = {
		{ "Pause", "pause" }, { "Resume", "resume" }, { "Stop", "stop" }, { "HardStop", "hard-stop" },
	};
	char msg[300];
	enum vm_state now = ops->get_state(ops->opaque);
	struct api_caps c = api_caps_for(now);
	const bool allowed_by[] = { c.can_pause, c.can_resume, c.can_stop, c.can_hard_stop };
	int which = -1;
	for (int k = 0; k < 4; k++)
		if (!strcmp(want, reqs[k].name))
			which = k;
	if (which < 0) {
		snprintf(msg, sizeof(msg), "invalid new VMState: %.100s", want);
		json_object_put(o);
		error_json(r, 500, msg);
		return;
	}
	if (!allowed_by[which]) {
		snprintf(msg, sizeof(msg), "cannot %s the VM in state %s", reqs[which].verb, vm_state_name(now));
		json_object_put(o);
		error_json(r, 500, msg);
		return;
	}
	char err[256] = "";
	int rc = ops->change_state(ops->opaque, want, err, sizeof(err));
	json_object_put(o);
	if (rc < 0) {
		error_json(r, 500, *err ? err : "state change failed");
		return;
	}
	set_body(r, 202, NULL, NULL);
}

static void get_balloon(const struct api_vm_ops *ops, struct api_response *r)
{
	static const char *names[BALLOON_STAT_COUNT] = { "swapIn", "swapOut", "majorFaults", "minorFaults", "freeMemory",
							 "totalMemory", "availableMemory", "diskCaches",
							 "hugetlbAllocations", "hugetlbFailures" };
	struct balloon_info b;
	if (!ops->balloon_info || ops->balloon_info(ops->opaque, &b) < 0) {
		error_json(r, 404, "no virtio-balloon device");
		return;
	}
	json_object *o = json_object_new_object(), *st = json_object_new_object();
	json_object_object_add(o, "memoryBytes", json_object_new_uint64(b.memory_bytes));
	json_object_object_add(o, "targetBytes", json_object_new_uint64(b.target_bytes));
	json_object_object_add(o, "actualBytes", json_object_new_uint64(b.actual_bytes));
	for (int i = 0; i < BALLOON_STAT_COUNT; i++)
		if (b.stats.present & (1u << i))
			json_object_object_add(st, names[i], json_object_new_uint64(b.stats.val[i]));
	json_object_object_add(o, "stats", st);
	set_body(r, 200, API_JSON_TYPE, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

static void post_balloon(const struct api_vm_ops *ops, const char *body, size_t len, struct api_response *r)
{
	if (!ops->balloon_set) {
		error_json(r, 404, "no virtio-balloon device");
		return;
	}
	json_tokener *tok = json_tokener_new_ex(8);
	json_object *o = tok ? json_tokener_parse_ex(tok, body, (int)len) : NULL, *t;
	bool ok = tok && json_tokener_get_error(tok) == json_tokener_success && json_object_is_type(o, json_type_object) &&
		  json_object_object_get_ex(o, "targetBytes", &t) && json_object_is_type(t, json_type_int) &&
		  json_object_get_int64(t) > 0;
	uint64_t target = ok ? json_object_get_uint64(t) : 0;
	if (tok)
		json_tokener_free(tok);
	json_object_put(o);
	if (!ok) {
		error_json(r, 400, "expected {\"targetBytes\": N} with N > 0");
		return;
	}
	char err[200] = "";
	if (ops->balloon_set(ops->opaque, target, err, sizeof(err)) < 0) {
		error_json(r, 400, *err ? err : "cannot set the balloon target");
		return;
	}
	set_body(r, 202, NULL, NULL);
}

static void get_screenshot(const struct api_vm_ops *ops, struct api_response *r)
{
	char err[160] = "";
	uint8_t *png;
	size_t len;
	int rc = ops->screenshot ? ops->screenshot(ops->opaque, &png, &len, err, sizeof(err)) : -ENODEV;
	if (rc == -ENODEV) {
		error_json(r, 400, *err ? err : "the VM has no virtio-gpu device");
	} else if (rc == -EAGAIN) {
		error_json(r, 409, err); /* try again once the guest drew something */
	} else if (rc < 0) {
		error_json(r, 500, *err ? err : "cannot take a screenshot");
	} else {
		r->status = 200;
		r->content_type = "image/png";
		r->body = (char *)png;
		r->len = len;
	}
}

void api_handle(const struct api_vm_ops *ops, const char *method, const char *url, const char *body, size_t len,
		struct api_response *out)
{
	memset(out, 0, sizeof(*out));
	/* the query string does not select a route */
	size_t ul = strcspn(url, "?");
	bool is_state = ul == 9 && !strncmp(url, "/vm/state", 9);
	bool is_inspect = ul == 11 && !strncmp(url, "/vm/inspect", 11);
	bool is_balloon = ul == 11 && !strncmp(url, "/vm/balloon", 11);
	bool is_screenshot = ul == 14 && !strncmp(url, "/vm/screenshot", 14);
	if (is_state && !strcmp(method, "GET")) {
		get_state(ops, out);
	} else if (is_state && !strcmp(method, "POST")) {
		post_state(ops, body ? body : "", body ? len : 0, out);
	} else if (is_inspect && !strcmp(method, "GET")) {
		char *j = ops->inspect(ops->opaque);
		if (!j) {
			error_json(out, 500, "out of memory");
			return;
		}
		out->status = 200;
		out->content_type = API_JSON_TYPE;
		out->body = j;
		out->len = strlen(j);
	} else if (is_balloon && !strcmp(method, "GET")) {
		get_balloon(ops, out);
	} else if (is_balloon && !strcmp(method, "POST")) {
		post_balloon(ops, body ? body : "", body ? len : 0, out);
	} else if (is_screenshot && !strcmp(method, "GET")) {
		get_screenshot(ops, out);
	} else {
		set_body(out, 404, "text/plain; charset=utf-8", "404 page not found\n");
	}
}

/* A name a DNS-rebinding page cannot take over: an address literal (a
 * page can only point its own name at 127.0.0.1), localhost, or the name
 * the user bound. host may carry a port and IPv6 brackets. */
static bool host_allowed(const char *host, const char *bound)
{
	char name[256];
	size_t n;
	if (host[0] == '[') {
		n = strcspn(host + 1, "]");
		if (host[1 + n] != ']' || n >= sizeof(name))
			return false;
		memcpy(name, host + 1, n);
	} else {
		n = strcspn(host, ":");
		if (n >= sizeof(name))
			return false;
		memcpy(name, host, n);
	}
	name[n] = 0;
	unsigned char addr[16];
	return !strcasecmp(name, "localhost") || (bound && *bound && !strcasecmp(name, bound)) ||
	       inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

bool api_request_allowed(const char *host, const char *origin, const char *content_type, bool tcp,
			 const char *bound_host, struct api_response *out)
{
	memset(out, 0, sizeof(*out));
	if (origin) {
		error_json(out, 403, "requests from web pages (with an Origin header) are refused");
		return false;
	}
	/* Only a TCP listener can be reached by a web page; on the unix socket
	 * `curl -d` (form type) keeps working as it does with vfkit. */
	if (tcp && content_type) {
		size_t n = strcspn(content_type, "; \t");
		if (n != 16 || strncasecmp(content_type, "application/json", 16)) {
			error_json(out, 415, "the request body must be application/json "
					     "(curl: -H 'Content-Type: application/json')");
			return false;
		}
	}
	if (tcp && (!host || !host_allowed(host, bound_host))) {
		error_json(out, 403, "unexpected Host header (the API answers only its own name or address)");
		return false;
	}
	return true;
}

