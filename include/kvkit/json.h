/* libkvkit: the VM configuration as JSON in vfkit's format (what
 * GET /vm/inspect returns and what --config reads), and the canonical vfkit
 * command line for a configuration (what podman and CRC build their argv
 * from). Both directions are lossless for everything the format can carry. */
#ifndef KVKIT_JSON_H
#define KVKIT_JSON_H
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Also write kvkit's own top-level keys (restfulURI, gui, logLevel, pidfile,
 * cloudInit): for --config files, not for /vm/inspect. */
#define KV_JSON_KVKIT_KEYS 1u
/* Include runtime-only fields (ptyName): /vm/inspect. */
#define KV_JSON_RUNTIME 2u

/* A malloc'd compact JSON document, or NULL when out of memory. */
char *kv_config_to_json(const struct kv_config *c, unsigned flags);

/* Fill c (initialised by the caller with kv_config_init) from a JSON
 * document. Unknown top-level keys and null values are ignored; a device or
 * bootloader without a known "kind" is an error. With KV_JSON_RUNTIME unset,
 * runtime-only fields (ptyName, socket) are refused. -1 with one line in err. */
int kv_config_from_json(const char *text, struct kv_config *c, unsigned flags, char *err, size_t errlen);

/* The canonical vfkit command line for c (spec 5.3), without argv[0]: a
 * malloc'd NULL-terminated vector (free with kv_free_strv(v, n)). Values
 * containing a comma cannot be written in device syntax: -1 with err. */
int kv_config_to_argv(const struct kv_config *c, char ***argv, int *argc, char *err, size_t errlen);


#ifdef __cplusplus
}
#endif
#endif
