/* --ignition PATH: the file served over HTTP on guest->host vsock port 1024
 * (CoreOS Ignition's applehv platform fetches http://d/ there). */
#ifndef KVKIT_IGNITION_H
#define KVKIT_IGNITION_H
#include <stddef.h>
#define IGNITION_VSOCK_PORT 1024

/* Read the file now (an unreadable file is a startup error). */
int ignition_load(const char *path, char *err, size_t errlen);
/* Start the HTTP server (its own thread). */
int ignition_start(char *err, size_t errlen);
/* One guest connection: the server owns fd from now on. */
void ignition_accept(void *opaque, int fd);
void ignition_stop(void);

#endif
