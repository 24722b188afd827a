/* libkvkit internals: the bootloaders' options, one table per bootloader
 * (boot_options.c), read by the command-line parser (cmdline.c) and the
 * JSON reader and writer (json.c). The printer (print.c) keeps its own
 * code: a kernel command line needs quoting the table cannot express. */
#ifndef KVKIT_LIB_BOOT_OPTIONS_H
#define KVKIT_LIB_BOOT_OPTIONS_H
#include <kvkit/config.h>
#include <stdbool.h>
#include <stddef.h>

struct kv_boot_opt {
	const char *key;  /* command-line key */
	const char *json; /* JSON key */
	size_t off;       /* its field in struct kv_bootloader: char *, or bool for a flag */
	bool flag;        /* the key alone on the command line; a JSON boolean */
	bool omit_empty;  /* JSON: written only when set (kvkit's keys) */
	bool trim_quotes; /* cmdline="...": the outer quotes are not part of the value */
};

struct kv_boot_desc {
	enum kv_boot_kind kind;
	const char *type;      /* --bootloader TYPE,... */
	const char *json_kind; /* JSON "kind" */
	const char *noun;      /* in errors: "Linux bootloaders" */
	const char *what;      /* in "unexpected value for WHAT 'key' option" */
	const char *required;  /* the key that must be given a value; NULL: none */
	const struct kv_boot_opt *opts;
	size_t nopts;
};

const struct kv_boot_desc *kv_boot_desc_by_type(const char *type);
const struct kv_boot_desc *kv_boot_desc_by_json_kind(const char *json_kind);
const struct kv_boot_desc *kv_boot_desc_of(enum kv_boot_kind kind);
const struct kv_boot_opt *kv_boot_opt_find(const struct kv_boot_desc *t, const char *key);
char **kv_boot_str(struct kv_bootloader *b, const struct kv_boot_opt *o);
bool *kv_boot_flag(struct kv_bootloader *b, const struct kv_boot_opt *o);
/* -1 with err when the required option is missing or empty. */
int kv_boot_check_required(const struct kv_boot_desc *t, struct kv_bootloader *b, char *err, size_t errlen);

#endif
