/* libkvkit: parse vfkit's command line into a kv_config. */
#ifndef KVKIT_CMDLINE_H
#define KVKIT_CMDLINE_H
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

enum kv_cmdline_action { KV_ACTION_RUN = 0, KV_ACTION_HELP, KV_ACTION_VERSION };

/* Parse argv (argv[0] is the program name). On error returns -1 with one
 * line of text in err (without the "Error: " prefix). */
int kv_cmdline_parse(int argc, char **argv, struct kv_config *cfg, enum kv_cmdline_action *action,
		     char *err, size_t errlen);

/* Split an option list the way vfkit does. quote_aware selects --bootloader
 * style (commas inside quotes kept). Returns the element count or -1 (err set). */
int kv_split_options(const char *s, bool quote_aware, char ***out, char *err, size_t errlen);
void kv_free_strv(char **v, int n);

/* Go strconv.ParseUint(s, 0, bits) semantics; 0 or -1 with Go's reason text. */
int kv_parse_uint(const char *s, unsigned bits, uint64_t *out, char *reason, size_t reasonlen);

const char *kv_usage(void);

#ifdef __cplusplus
}
#endif
#endif
