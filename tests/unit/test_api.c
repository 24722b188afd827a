/* Unit tests for the REST API's request semantics (spec 4.2-4.4) against a
 * fake VM, and for --restful-uri parsing (4.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/api/api.h"

static enum vm_state fake_state;
static char last_change[32];

static enum vm_state fake_get(void *o) { (void)o; return fake_state; }
static int fake_change(void *o, const char *want, char *err, size_t errlen)
{
	(void)o; (void)err; (void)errlen;
	snprintf(last_change, sizeof(last_change), "%s", want);
	return 0;
}
static char *fake_inspect(void *o) { (void)o; return strdup("{\"vcpus\":1}"); }
static uint64_t balloon_target;
static int fake_balloon_info(void *o, struct balloon_info *b)
{
	(void)o;
	memset(b, 0, sizeof(*b));
	b->memory_bytes = 1 << 30;
	b->target_bytes = balloon_target;
	b->actual_bytes = 3 << 28;
	b->stats.present = 1u << 4;
	b->stats.val[4] = 12345;
	return 0;
}
static int fake_balloon_set(void *o, uint64_t v, char *err, size_t errlen)
{
	(void)o;
	if (v > 1 << 30) {
		snprintf(err, errlen, "too big");
		return -1;
	}
	balloon_target = v;
	return 0;
}
static const struct api_vm_ops ops = { .get_state = fake_get, .change_state = fake_change, .inspect = fake_inspect,
				       .balloon_info = fake_balloon_info, .balloon_set = fake_balloon_set };

static struct api_response call(const char *method, const char *url, const char *body)
{
	struct api_response r;
	last_change[0] = 0;
	api_handle(&ops, method, url, body, body ? strlen(body) : 0, &r);
	return r;
}

#define EXPECT(r, st, text) do { assert_int_equal((r).status, st); \
	if (text) assert_string_equal((r).body, text); else assert_int_equal((r).len, 0); free((r).body); } while (0)

static void get_state_every_state(void **s)
{
	(void)s;
	static const char *want[] = {
		"{\"canHardStop\":true,\"canPause\":false,\"canResume\":false,\"canStart\":false,\"canStop\":false,\"state\":\"VirtualMachineStateStarting\"}",
		"{\"canHardStop\":true,\"canPause\":true,\"canResume\":false,\"canStart\":false,\"canStop\":true,\"state\":\"VirtualMachineStateRunning\"}",
		"{\"canHardStop\":true,\"canPause\":false,\"canResume\":false,\"canStart\":false,\"canStop\":false,\"state\":\"VirtualMachineStatePausing\"}",
		"{\"canHardStop\":true,\"canPause\":false,\"canResume\":true,\"canStart\":false,\"canStop\":false,\"state\":\"VirtualMachineStatePaused\"}",
		"{\"canHardStop\":true,\"canPause\":false,\"canResume\":false,\"canStart\":false,\"canStop\":false,\"state\":\"VirtualMachineStateResuming\"}",
		"{\"canHardStop\":false,\"canPause\":false,\"canResume\":false,\"canStart\":false,\"canStop\":false,\"state\":\"VirtualMachineStateStopping\"}",
		"{\"canHardStop\":false,\"canPause\":false,\"canResume\":false,\"canStart\":true,\"canStop\":false,\"state\":\"VirtualMachineStateStopped\"}",
		"{\"canHardStop\":false,\"canPause\":false,\"canResume\":false,\"canStart\":false,\"canStop\":false,\"state\":\"VirtualMachineStateError\"}",
	};
	for (int st = VM_STARTING; st <= VM_ERROR; st++) {
		fake_state = st;
		struct api_response r = call("GET", "/vm/state", NULL);
		assert_string_equal(r.content_type, API_JSON_TYPE);
		EXPECT(r, 200, want[st]);
	}
}

static void post_state(void **s)
{
	(void)s;
	struct api_response r;
	fake_state = VM_RUNNING;
	r = call("POST", "/vm/state", "{\"state\":\"Pause\",\"other\":1}");
	EXPECT(r, 202, NULL);
	assert_string_equal(last_change, "Pause");
	r = call("POST", "/vm/state", "{\"state\":\"Stop\"}");
	EXPECT(r, 202, NULL);
	r = call("POST", "/vm/state", "{\"state\":\"HardStop\"}");
	EXPECT(r, 202, NULL);
	r = call("POST", "/vm/state", "{\"state\":\"Resume\"}");
	EXPECT(r, 500, "{\"error\":\"cannot resume the VM in state VirtualMachineStateRunning\"}");
	assert_string_equal(last_change, "");
	r = call("POST", "/vm/state", "{\"state\":\"pause\"}"); /* case-sensitive */
	EXPECT(r, 500, "{\"error\":\"invalid new VMState: pause\"}");
	r = call("POST", "/vm/state", "{\"state\":\"Start\"}");
	EXPECT(r, 500, "{\"error\":\"invalid new VMState: Start\"}");
	r = call("POST", "/vm/state", "{}");
	EXPECT(r, 500, "{\"error\":\"invalid new VMState: \"}");
	r = call("POST", "/vm/state", "");
	EXPECT(r, 400, "{\"error\":\"EOF\"}");
	r = call("POST", "/vm/state", "{\"state\":");
	assert_int_equal(r.status, 400);
	free(r.body);
	r = call("POST", "/vm/state", "{\"state\":7}");
	assert_int_equal(r.status, 400);
	free(r.body);
	fake_state = VM_STOPPING; /* a second request while stopping */
	r = call("POST", "/vm/state", "{\"state\":\"HardStop\"}");
	EXPECT(r, 500, "{\"error\":\"cannot hard-stop the VM in state VirtualMachineStateStopping\"}");
	fake_state = VM_PAUSED;
	r = call("POST", "/vm/state", "{\"state\":\"Pause\"}");
	EXPECT(r, 500, "{\"error\":\"cannot pause the VM in state VirtualMachineStatePaused\"}");
}

static void routes(void **s)
{
	(void)s;
	struct api_response r = call("GET", "/vm/inspect", NULL);
	EXPECT(r, 200, "{\"vcpus\":1}");
	r = call("GET", "/vm/state?x=1", NULL);
	assert_int_equal(r.status, 200);
	free(r.body);
	r = call("GET", "/vm/statex", NULL);
	EXPECT(r, 404, "404 page not found\n");
	r = call("DELETE", "/vm/state", NULL);
	EXPECT(r, 404, "404 page not found\n");
	r = call("POST", "/vm/inspect", "{}");
	EXPECT(r, 404, "404 page not found\n");
}

static void balloon(void **s)
{
	(void)s;
	struct api_response r = call("POST", "/vm/balloon", "{\"targetBytes\":536870912}");
	EXPECT(r, 202, NULL);
	assert_int_equal(balloon_target, 536870912);
	r = call("GET", "/vm/balloon", NULL);
	EXPECT(r, 200, "{\"memoryBytes\":1073741824,\"targetBytes\":536870912,\"actualBytes\":805306368,\"stats\":{\"freeMemory\":12345}}");
	r = call("POST", "/vm/balloon", "{\"targetBytes\":-5}");
	assert_int_equal(r.status, 400);
	free(r.body);
	r = call("POST", "/vm/balloon", "{\"targetBytes\":9999999999999}");
	EXPECT(r, 400, "{\"error\":\"too big\"}");
	r = call("POST", "/vm/balloon", "nonsense");
	assert_int_equal(r.status, 400);
	free(r.body);
	assert_int_equal(balloon_target, 536870912);
}

/* Issue 23 defect 7: a web page's cross-site POST (text/plain, with an
 * Origin) stopped the VM, and a rebound DNS name read /vm/inspect. */
static void browser_requests_refused(void **s)
{
	(void)s;
	struct api_response r;
	/* what podman (tcp://localhost), minikube (unix, Host "_") and curl send */
	assert_true(api_request_allowed("localhost:7777", NULL, "application/json", true, "localhost", &r));
	assert_true(api_request_allowed("_", NULL, "application/json", false, "", &r));
	assert_true(api_request_allowed("127.0.0.1:7777", NULL, NULL, true, "localhost", &r));
	assert_true(api_request_allowed("[::1]:7777", NULL, "application/json; charset=utf-8", true, "", &r));
	/* curl -d on the unix socket: no page can reach it, so no type check */
	assert_true(api_request_allowed("localhost", NULL, "application/x-www-form-urlencoded", false, "", &r));
	assert_true(api_request_allowed("vmhost.lan:80", NULL, NULL, true, "vmhost.lan", &r));
	/* a page's form or text POST, with or without an Origin */
	assert_false(api_request_allowed("localhost:7777", "http://evil.example", "text/plain", true, "localhost", &r));
	assert_int_equal(r.status, 403);
	free(r.body);
	assert_false(api_request_allowed("localhost:7777", NULL, "text/plain;charset=UTF-8", true, "localhost", &r));
	assert_int_equal(r.status, 415);
	free(r.body);
	assert_false(api_request_allowed("localhost:7777", NULL, "application/x-www-form-urlencoded", true, "", &r));
	assert_int_equal(r.status, 415);
	free(r.body);
	assert_false(api_request_allowed("localhost", NULL, "application/jsonp", true, "", &r));
	free(r.body);
	/* DNS rebinding: the page's own name, aimed at 127.0.0.1 */
	assert_false(api_request_allowed("evil.example:7777", NULL, NULL, true, "localhost", &r));
	assert_int_equal(r.status, 403);
	assert_non_null(strstr(r.body, "Host"));
	free(r.body);
	assert_false(api_request_allowed(NULL, NULL, NULL, true, "", &r)); /* HTTP/1.0 without Host */
	free(r.body);
	assert_false(api_request_allowed("[::1:80", NULL, NULL, true, "", &r));
	free(r.body);
}

static void uris(void **s)
{
	(void)s;
	struct api_uri u;
	char err[256];
	static const struct { const char *uri; int kind; const char *host_or_path; unsigned port; const char *err; } cases[] = {
		{ "none://", API_URI_NONE, "", 0, NULL },
		{ "none:", API_URI_NONE, "", 0, NULL },
		{ "none://whatever", API_URI_NONE, "", 0, NULL },
		{ "tcp://localhost:8080", API_URI_TCP, "localhost", 8080, NULL },
		{ "http://127.0.0.1:1", API_URI_TCP, "127.0.0.1", 1, NULL },
		{ "tcp://[::1]:9", API_URI_TCP, "::1", 9, NULL },
		{ "tcp://:7000", API_URI_TCP, "", 7000, NULL },
		{ "unix:///run/kvkit.sock", API_URI_UNIX, "/run/kvkit.sock", 0, NULL },
		{ "tcp://localhost", 0, NULL, 0, "invalid TCP uri: missing port" },
		{ "tcp://", 0, NULL, 0, "invalid TCP uri: missing host" },
		{ "tcp://localhost:8080/", 0, NULL, 0, "invalid TCP uri: path is forbidden" },
		{ "tcp://localhost:8080/vm", 0, NULL, 0, "invalid TCP uri: path is forbidden" },
		{ "unix://", 0, NULL, 0, "invalid unix uri: missing path" },
		{ "unix://host/x.sock", 0, NULL, 0, "invalid unix uri: host is forbidden" },
		{ "ftp://x:1", 0, NULL, 0, "invalid scheme ftp" },
		{ "localhost", 0, NULL, 0, "parse \"localhost\": invalid URI for request" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = api_uri_parse(cases[i].uri, &u, err, sizeof(err));
		if (cases[i].err) {
			assert_int_equal(r, -1);
			assert_string_equal(err, cases[i].err);
			continue;
		}
		assert_int_equal(r, 0);
		assert_int_equal(u.kind, cases[i].kind);
		if (u.kind == API_URI_TCP) {
			assert_string_equal(u.host, cases[i].host_or_path);
			assert_int_equal(u.port, cases[i].port);
		} else if (u.kind == API_URI_UNIX) {
			assert_string_equal(u.path, cases[i].host_or_path);
		}
	}
	char longp[200] = "unix:///";
	memset(longp + 8, 'a', 120);
	assert_int_equal(api_uri_parse(longp, &u, err, sizeof(err)), -1);
	assert_string_equal(err, "invalid unix uri: socket path length exceeds 107 bytes");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(get_state_every_state),
		cmocka_unit_test(post_state),
		cmocka_unit_test(routes),
		cmocka_unit_test(balloon),
		cmocka_unit_test(browser_requests_refused),
		cmocka_unit_test(uris),
	};
	return cmocka_run_group_tests_name("rest api", tests, NULL, NULL);
}
