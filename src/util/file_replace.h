/* Replacing a small file whole or not at all (the pidfile, the EFI
 * variable store made from its template). */
#ifndef KVKIT_FILE_REPLACE_H
#define KVKIT_FILE_REPLACE_H
#include <stddef.h>
#include <sys/types.h>

/* Write data to a temporary file beside path, give it mode, fsync it,
 * rename it over path and sync the directory: a crash leaves the old file
 * or the new one, never a part. 0 or -errno (path untouched). */
int file_replace(const char *path, const void *data, size_t len, mode_t mode);

#endif
