/* libmicrohttpd (REST API, Ignition server), loaded with dlopen() when one
 * of them starts: see util/dynlib.h. Callers use the usual names; the
 * macros route them through the table. */
#ifndef KVKIT_MHD_LIB_H
#define KVKIT_MHD_LIB_H
#include <microhttpd.h>
#include <stddef.h>
#include "dynlib.h"

#define MHD_LIB_FUNCS(X) \
	X(MHD_add_connection) \
	X(MHD_add_response_header) \
	X(MHD_create_response_from_buffer) \
	X(MHD_destroy_response) \
	X(MHD_lookup_connection_value) \
	X(MHD_queue_response) \
	X(MHD_quiesce_daemon) \
	X(MHD_set_connection_option) \
	X(MHD_start_daemon) \
	X(MHD_stop_daemon)

struct mhd_lib {
	MHD_LIB_FUNCS(DYNLIB_MEMBER)
};
extern struct mhd_lib mhd_lib;

/* Load libmicrohttpd once; 0, or -1 with one line in err. */
int mhd_lib_load(char *err, size_t errlen);

#ifndef MHD_LIB_IMPL
#define MHD_add_connection (*mhd_lib.MHD_add_connection)
#define MHD_add_response_header (*mhd_lib.MHD_add_response_header)
#define MHD_create_response_from_buffer (*mhd_lib.MHD_create_response_from_buffer)
#define MHD_destroy_response (*mhd_lib.MHD_destroy_response)
#define MHD_lookup_connection_value (*mhd_lib.MHD_lookup_connection_value)
#define MHD_queue_response (*mhd_lib.MHD_queue_response)
#define MHD_quiesce_daemon (*mhd_lib.MHD_quiesce_daemon)
#define MHD_set_connection_option (*mhd_lib.MHD_set_connection_option)
#define MHD_start_daemon (*mhd_lib.MHD_start_daemon)
#define MHD_stop_daemon (*mhd_lib.MHD_stop_daemon)
#endif

#endif
