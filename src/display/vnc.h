/* virtio-gpu vnc=: the first GPU's screen and the virtio keyboard and
 * tablet over RFB (libvncserver), for hosts without a display. */
#ifndef KVKIT_DISPLAY_VNC_H
#define KVKIT_DISPLAY_VNC_H
#include <stdint.h>
#include <stddef.h>
struct vm;

/* Bind the listener (before the VM is created; errors are the user's to
 * fix: a port in use, a bad address). -1 with err. */
int vnc_open(const char *spec, uint32_t width, uint32_t height, char *err, size_t errlen);
/* The VM exists: serve clients from now on, on vnc's own thread. */
int vnc_attach(struct vm *vm, char *err, size_t errlen);
/* Stop serving, close the clients and the listener (removing a unix socket). */
void vnc_close(void);

#endif
