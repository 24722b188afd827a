/* libnbd, loaded with dlopen() when the first nbd device opens: linked
 * normally, its dependency chain (gnutls, p11-kit, libxml2, ICU, libstdc++)
 * costs every kvkit process about 4 MiB of memory, NBD or not. nbd.c calls
 * the functions by their usual names; the macros below route them through
 * the table. */
#ifndef KVKIT_NBD_LIB_H
#define KVKIT_NBD_LIB_H
#include <libnbd.h>
#include <stddef.h>
#include "../util/dynlib.h"

#define NBD_LIB_FUNCS(X) \
	X(nbd_aio_connect_uri) \
	X(nbd_aio_flush) \
	X(nbd_aio_get_direction) \
	X(nbd_aio_get_fd) \
	X(nbd_aio_is_closed) \
	X(nbd_aio_is_dead) \
	X(nbd_aio_is_ready) \
	X(nbd_aio_notify_read) \
	X(nbd_aio_notify_write) \
	X(nbd_aio_pread) \
	X(nbd_aio_pwrite) \
	X(nbd_aio_trim) \
	X(nbd_aio_zero) \
	X(nbd_can_flush) \
	X(nbd_can_trim) \
	X(nbd_can_zero) \
	X(nbd_close) \
	X(nbd_create) \
	X(nbd_get_errno) \
	X(nbd_get_error) \
	X(nbd_get_size) \
	X(nbd_is_read_only) \
	X(nbd_set_handle_name) \
	X(nbd_set_uri_allow_local_file) \
	X(nbd_shutdown)

struct nbd_lib {
	NBD_LIB_FUNCS(DYNLIB_MEMBER)
};
extern struct nbd_lib nbd_lib;

/* Load libnbd once; 0, or -1 with one line in err. */
int nbd_lib_load(char *err, size_t errlen);

#ifndef NBD_LIB_IMPL
#define nbd_aio_connect_uri (*nbd_lib.nbd_aio_connect_uri)
#define nbd_aio_flush (*nbd_lib.nbd_aio_flush)
#define nbd_aio_get_direction (*nbd_lib.nbd_aio_get_direction)
#define nbd_aio_get_fd (*nbd_lib.nbd_aio_get_fd)
#define nbd_aio_is_closed (*nbd_lib.nbd_aio_is_closed)
#define nbd_aio_is_dead (*nbd_lib.nbd_aio_is_dead)
#define nbd_aio_is_ready (*nbd_lib.nbd_aio_is_ready)
#define nbd_aio_notify_read (*nbd_lib.nbd_aio_notify_read)
#define nbd_aio_notify_write (*nbd_lib.nbd_aio_notify_write)
#define nbd_aio_pread (*nbd_lib.nbd_aio_pread)
#define nbd_aio_pwrite (*nbd_lib.nbd_aio_pwrite)
#define nbd_aio_trim (*nbd_lib.nbd_aio_trim)
#define nbd_aio_zero (*nbd_lib.nbd_aio_zero)
#define nbd_can_flush (*nbd_lib.nbd_can_flush)
#define nbd_can_trim (*nbd_lib.nbd_can_trim)
#define nbd_can_zero (*nbd_lib.nbd_can_zero)
#define nbd_close (*nbd_lib.nbd_close)
#define nbd_create (*nbd_lib.nbd_create)
#define nbd_get_errno (*nbd_lib.nbd_get_errno)
#define nbd_get_error (*nbd_lib.nbd_get_error)
#define nbd_get_size (*nbd_lib.nbd_get_size)
#define nbd_is_read_only (*nbd_lib.nbd_is_read_only)
#define nbd_set_handle_name (*nbd_lib.nbd_set_handle_name)
#define nbd_set_uri_allow_local_file (*nbd_lib.nbd_set_uri_allow_local_file)
#define nbd_shutdown (*nbd_lib.nbd_shutdown)
#endif

#endif
