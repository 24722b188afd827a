/* The REST API (spec section 4): vfkit's /vm/state and /vm/inspect.
 *   handler.c  what a request means: routing, bodies, the can* table. Pure,
 *              so unit tests and the fuzzer drive it without sockets.
 *   server.c   --restful-uri parsing, binding before the VM starts, and the
 *              HTTP server itself (libmicrohttpd, on its own thread). */
#ifndef KVKIT_API_H
#define KVKIT_API_H
#include <stdbool.h>
#include <stddef.h>
#include "../virtio/devices.h"
#include "../vmm/vm.h"

/* What the API may ask of the VM. */
struct api_vm_ops {
	enum vm_state (*get_state)(void *opaque);
	/* "Pause", "Resume", "Stop" or "HardStop", already allowed by the
	 * can* table; returns once done (spec 4.3), or -1 with err */
	int (*change_state)(void *opaque, const char *state, char *err, size_t errlen);
	/* malloc'd JSON of the live configuration */
	char *(*inspect)(void *opaque);
	/* beyond vfkit: the balloon (NULL when there is none) */
	int (*balloon_info)(void *opaque, struct balloon_info *out);
	int (*balloon_set)(void *opaque, uint64_t guest_bytes, char *err, size_t errlen);
	/* beyond vfkit: the first GPU's scanout as a malloc'ed PNG; -ENODEV
	 * (no GPU) or another negative errno, with err */
	int (*screenshot)(void *opaque, uint8_t **png, size_t *len, char *err, size_t errlen);
	void *opaque;
};

struct api_response {
	unsigned status;
	const char *content_type; /* NULL: no body */
	char *body;               /* malloc'd */
	size_t len;
};

#define API_MAX_BODY (64 * 1024)
#define API_JSON_TYPE "application/json; charset=utf-8"

/* Answer one request. body may be NULL when len is 0. */
void api_handle(const struct api_vm_ops *ops, const char *method, const char *url, const char *body, size_t len,
		struct api_response *out);

/* Before api_handle: refuse what a web browser sends, so a page the user
 * visits (or one that rebinds its DNS name to 127.0.0.1) cannot drive the
 * VM: an Origin header, a body that is not application/json (the types a
 * page may send cross-site without asking are form and text types), and
 * on TCP a Host that is not an address literal, localhost or the bound
 * name. podman, minikube and curl send none of these. Fills out when false. */
bool api_request_allowed(const char *host, const char *origin, const char *content_type, bool tcp,
			 const char *bound_host, struct api_response *out);

struct api_caps {
	bool can_start, can_pause, can_resume, can_stop, can_hard_stop;
};
struct api_caps api_caps_for(enum vm_state s);

/* --restful-uri. kind NONE means the API is off. */
enum api_uri_kind { API_URI_NONE, API_URI_TCP, API_URI_UNIX };
struct api_uri {
	enum api_uri_kind kind;
	char host[256]; /* TCP: as given, without brackets; "" = all interfaces */
	unsigned port;
	char path[108]; /* unix */
};
int api_uri_parse(const char *uri, struct api_uri *out, char *err, size_t errlen);

/* Bind the listener(s) now (before the guest runs). -1 with err. */
int api_listen(const struct api_uri *u, char *err, size_t errlen);
/* Serve requests from now on. */
int api_start(const struct api_vm_ops *ops, char *err, size_t errlen);
/* Stop accepting (new connections are refused), let replies in flight be
 * written (bounded), stop the server, remove the unix socket. */
void api_shutdown(void);

#endif
