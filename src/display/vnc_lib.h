/* libvncserver (virtio-gpu vnc=), loaded with dlopen() when a VNC server
 * starts: see util/dynlib.h (linked, it would bring gnutls, libgcrypt,
 * libjpeg and lzo into every kvkit process). rfbLog and rfbErr are
 * variables: their slots hold their addresses. rfbInitServer is rfb.h's
 * macro for the pthreads + ZRLE build Debian ships. */
#ifndef KVKIT_VNC_LIB_H
#define KVKIT_VNC_LIB_H
#include <rfb/rfb.h>
#include <stddef.h>
#include "../util/dynlib.h"

#define VNC_LIB_FUNCS(X) \
	X(rfbGetScreen) \
	X(rfbInitServerWithPthreadsAndZRLE) \
	X(rfbNewClient) \
	X(rfbProcessEvents) \
	X(rfbNewFramebuffer) \
	X(rfbMarkRectAsModified) \
	X(rfbShutdownServer) \
	X(rfbScreenCleanup) \
	X(rfbSetCursor) \
	X(rfbLog) \
	X(rfbErr)

struct vnc_lib {
	VNC_LIB_FUNCS(DYNLIB_MEMBER)
};
extern struct vnc_lib vnc_lib;

/* Load the library once; 0, or -1 with one line in err. */
int vnc_lib_load(char *err, size_t errlen);

#ifndef VNC_LIB_IMPL
#define rfbGetScreen (*vnc_lib.rfbGetScreen)
#define rfbInitServerWithPthreadsAndZRLE (*vnc_lib.rfbInitServerWithPthreadsAndZRLE)
#define rfbNewClient (*vnc_lib.rfbNewClient)
#define rfbProcessEvents (*vnc_lib.rfbProcessEvents)
#define rfbNewFramebuffer (*vnc_lib.rfbNewFramebuffer)
#define rfbMarkRectAsModified (*vnc_lib.rfbMarkRectAsModified)
#define rfbShutdownServer (*vnc_lib.rfbShutdownServer)
#define rfbScreenCleanup (*vnc_lib.rfbScreenCleanup)
#define rfbSetCursor (*vnc_lib.rfbSetCursor)
#define rfbLog (*vnc_lib.rfbLog)
#define rfbErr (*vnc_lib.rfbErr)
#endif

#endif
