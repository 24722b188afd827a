/* --timesync vsockPort=N: set the guest clock through qemu-guest-agent
 * listening on guest vsock port N (guest-set-time), once after boot and
 * whenever the host wakes from suspend or the VM is resumed. */
#ifndef KVKIT_TIMESYNC_H
#define KVKIT_TIMESYNC_H
#include <stdint.h>
struct vsock;

int timesync_start(struct vsock *v, uint32_t port);
/* Sync again soon (REST Resume). Any thread. */
void timesync_trigger(void);
void timesync_stop(void);

#endif
