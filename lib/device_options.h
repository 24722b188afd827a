/* libkvkit internals: one option table per device type.
 *
 * Each device type has one descriptor (device_tables.c) listing its options:
 * the command-line key, the JSON key, the kind of value, the field of
 * struct kv_device it lives in, its default (the descriptor's init) and its
 * checks. The command-line parser (cmdline.c), the JSON reader and writer
 * (json.c), the canonical printer (print.c) and the validator
 * (device_options.c) all walk these tables; none of them names an option. */
#ifndef KVKIT_LIB_DEVICE_OPTIONS_H
#define KVKIT_LIB_DEVICE_OPTIONS_H
#include <kvkit/config.h>
#include <stddef.h>
#include <stdint.h>

enum kv_opt_kind {
	KV_OPT_FLAG,   /* bool: the key alone on the command line; a JSON boolean */
	KV_OPT_SET,    /* the key alone stores .value in an int-like field (one of several flags) */
	KV_OPT_STRING, /* char * */
	KV_OPT_LIST,   /* char ** with its count at .off2: the key may repeat; a JSON array */
	KV_OPT_ENUM,   /* an int-like field named by .names */
	KV_OPT_ONOFF,  /* bool: on|off on the command line, a JSON boolean */
	KV_OPT_UINT,   /* unsigned decimal in [.min, .max]; presence bool at .off2 if nonzero */
	KV_OPT_INT,    /* signed decimal in [.min, .max]; JSON carries value * .json_scale */
	KV_OPT_MAC,    /* uint8_t[6], presence bool at .off2; Go's net.ParseMAC forms */
	KV_OPT_FD,     /* an inherited descriptor: JSON marks it {} and cannot carry it back */
};

/* An enum value's name. A value may have several; the first is written. */
struct kv_opt_name {
	const char *name;
	int value;
};

#define KV_OPT_WARN_VALUE 0x1u /* a flag given a value warns instead of failing (as vfkit does) */
#define KV_OPT_RUNTIME 0x2u    /* JSON only with KV_JSON_RUNTIME, and must be empty otherwise */
#define KV_OPT_EMPTY_NULL 0x4u /* a JSON "" reads as unset */

struct kv_device_desc;

struct kv_opt {
	const char *key;   /* command-line key; NULL: JSON only */
	const char *alias; /* another accepted command-line spelling */
	const char *json;  /* JSON key; NULL: command line only */
	enum kv_opt_kind kind;
	unsigned flags;
	size_t off, size; /* the field in struct kv_device; size 0: no field (only "given") */
	size_t off2;      /* LIST: its count; UINT and MAC: a presence bool (0: none) */
	int value;        /* SET: what the key stores */
	const struct kv_opt_name *names; /* ENUM: terminated by a NULL name */
	long long min, max;              /* UINT and INT bounds */
	long long json_scale;            /* INT: JSON unit per command-line unit (0: 1) */
	const char *what; /* names the option in "unexpected value for WHAT option" (default "TYPE 'key'") */
	const char *bad;  /* printf format (%s: the text given) for a value the kind or bounds refuse */
	/* an extra check of the value's text: NULL when good, else a printf
	 * format (%s: the text) for the error; also run by the validator */
	const char *(*check)(const char *text);
	/* when to write it; NULL: when it differs from the default */
	bool (*print_if)(const struct kv_device *d);
	bool (*json_if)(const struct kv_device *d);
};

struct kv_device_desc {
	enum kv_dev_kind kind;
	const char *type;      /* vfkit's --device name: "virtio-blk" */
	const char *json_kind; /* vfkit's JSON "kind": "virtioblk" */
	const char *noun;      /* "unknown option for NOUN: key" (default "TYPE devices") */
	bool json_devname;     /* JSON carries "devName": TYPE */
	const struct kv_opt *opts;
	size_t nopts;
	const char *const *print_order; /* command-line keys in printed order; NULL: table order */
	void (*init)(struct kv_device *d); /* the defaults, before any option */
	/* Once every option is in (seen: bit i when option i was given):
	 * derive what the options imply and refuse what they cannot mean
	 * together in this syntax. May be NULL. */
	int (*derive)(struct kv_device *d, uint64_t seen, char *err, size_t errlen);
	/* the cross-option rules of a finished device, whatever built it */
	int (*rules)(const struct kv_device *d, char *err, size_t errlen);
};

#define KV_SEEN(i) (1ull << (i))

const struct kv_device_desc *kv_desc_of(enum kv_dev_kind kind);
const struct kv_device_desc *kv_desc_by_type(const char *type);
const struct kv_device_desc *kv_desc_by_json_kind(const char *json_kind);
/* The option a command-line key names, or -1. */
int kv_opt_find(const struct kv_device_desc *t, const char *key);
int kv_opt_find_print(const struct kv_device_desc *t, const char *key); /* by key only, not alias */

/* Field access by the table. */
long long kv_opt_get_int(const struct kv_device *d, const struct kv_opt *o);
void kv_opt_set_int(struct kv_device *d, const struct kv_opt *o, long long v);
char **kv_opt_str(struct kv_device *d, const struct kv_opt *o);
const char *kv_opt_cstr(const struct kv_device *d, const struct kv_opt *o);
bool *kv_opt_presence(struct kv_device *d, const struct kv_opt *o);
uint8_t *kv_opt_mac(struct kv_device *d, const struct kv_opt *o);
/* Is the option set to something other than the device's default? */
bool kv_opt_differs(const struct kv_device_desc *t, const struct kv_opt *o, const struct kv_device *d);
int kv_opt_list_add(struct kv_device *d, const struct kv_opt *o, const char *s);
size_t kv_opt_list_len(const struct kv_device *d, const struct kv_opt *o);
const char *kv_opt_list_item(const struct kv_device *d, const struct kv_opt *o, size_t i);
const char *kv_opt_enum_name(const struct kv_opt *o, long long v);
int kv_opt_enum_value(const struct kv_opt *o, const char *name, int *v);
int kv_parse_mac(const char *s, uint8_t mac[6]);
void kv_format_mac(const uint8_t m[6], char out[18]);

/* Set one option from its command-line text (val NULL: "key" without '='). */
int kv_opt_parse_text(const struct kv_device_desc *t, const struct kv_opt *o, struct kv_device *d, const char *val,
		      char *err, size_t errlen);
/* The value as command-line text; NULL for a flag (the key alone). */
const char *kv_opt_text(const struct kv_opt *o, const struct kv_device *d, char *buf, size_t len);
/* Should the printer / the JSON writer write this option? */
bool kv_opt_print_wanted(const struct kv_device_desc *t, const struct kv_opt *o, const struct kv_device *d);
bool kv_opt_json_wanted(const struct kv_device_desc *t, const struct kv_opt *o, const struct kv_device *d);
/* Derive, then validate: what every input path runs once a device is read. */
int kv_device_finish(struct kv_device *d, uint64_t seen, char *err, size_t errlen);
/* A device of this kind with its table's defaults. */
void kv_device_init(struct kv_device *d, enum kv_dev_kind kind);
/* Free the strings and lists the table names. */
void kv_device_free_fields(struct kv_device *d);

extern const struct kv_device_desc *const kv_device_descs[];
extern const size_t kv_ndevice_descs;

#endif
