/* libFuzzer: REST requests (method, path, body) against the API handler
 * with a fake VM whose state is also fuzzed. Input: state byte, method
 * byte, then "path\nbody". */
#include <stdlib.h>
#include <string.h>
#include "../../src/api/api.h"

static enum vm_state st;
static enum vm_state get(void *o) { (void)o; return st; }
static int change(void *o, const char *w, char *e, size_t l) { (void)o; (void)w; (void)e; (void)l; return 0; }
static char *inspect(void *o) { (void)o; return strdup("{}"); }
static int binfo(void *o, struct balloon_info *b) { (void)o; memset(b, 0, sizeof(*b)); return 0; }
static int bset(void *o, uint64_t v, char *e, size_t l) { (void)o; (void)v; (void)e; (void)l; return 0; }
static const struct api_vm_ops ops = { .get_state = get, .change_state = change, .inspect = inspect,
				       .balloon_info = binfo, .balloon_set = bset };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *methods[] = { "GET", "POST", "PUT", "DELETE", "HEAD" };
	if (size < 2)
		return 0;
	st = data[0] % (VM_ERROR + 1);
	const char *method = methods[data[1] % 5];
	char *buf = malloc(size - 1);
	memcpy(buf, data + 2, size - 2);
	buf[size - 2] = 0;
	char *nl = memchr(buf, '\n', size - 2);
	const char *body = "";
	size_t blen = 0;
	if (nl) {
		*nl = 0;
		body = nl + 1;
		blen = size - 2 - (size_t)(nl + 1 - buf);
	}
	struct api_response r;
	api_handle(&ops, method, buf, body, blen, &r);
	if (r.status < 200 || r.status > 599 || (r.body && strlen(r.body) != r.len))
		abort();
	free(r.body);
	free(buf);
	return 0;
}
