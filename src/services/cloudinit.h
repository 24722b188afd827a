/* --cloud-init: the NoCloud seed image (spec 6.4). */
#ifndef KVKIT_CLOUDINIT_H
#define KVKIT_CLOUDINIT_H
#include <stddef.h>

/* Start-up checks: every file opens, one of user-data/meta-data is there. */
int cloudinit_check(char *const *files, size_t n, char *err, size_t errlen);
/* Remove stale images, write ours; *iso (malloc'd) is its path. */
int cloudinit_build(char *const *files, size_t n, char **iso, char *err, size_t errlen);
struct kv_config;
/* Build the seed image and add it as the config's last disk, read-only, so
 * /vm/inspect shows it (spec 6.4). */
int cloudinit_add_seed_disk(struct kv_config *c, char *err, size_t errlen);
/* Delete our image (at exit, on every path but SIGKILL). */
void cloudinit_remove(void);

#endif
