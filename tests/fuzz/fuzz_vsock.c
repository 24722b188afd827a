/* libFuzzer: what a hostile guest sends a virtio-vsock device. The input is
 * a series of packets (a 44-byte header, then payload) that the harness
 * puts on a transmit ring in fake guest memory, with a receive ring of
 * buffers for the replies. Ports and CIDs are steered by a flags byte so
 * packets reach real connections: a host unix listener (listen entry), the
 * in-process service (Ignition's port), the mux fallback, and a connection
 * kvkit opened towards the guest. Every reply the engine writes must stay
 * inside the guest's buffers (ASan), each receive chain is completed at
 * most once per offer, and nothing may crash or loop. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "../../src/vsock/vsock.h"
#include "../lib/fake_guest.h"

#define MEM (1u << 20)
#define QSIZE 64
#define RXQ_DESC 0x1000
#define TXQ_DESC 0x4000
#define EVQ_DESC 0x7000
#define RX_BUFS 0x10000 /* QSIZE buffers of RX_BUF bytes */
#define RX_BUF 4140
#define TX_DATA 0x60000
#define HDR 44

static struct fake_guest guest;
static uint8_t *ram; /* guest.ram */
static struct eventloop ev;
static pthread_mutex_t lock;
static int listener = -1;
static char lpath[108], cpath[108], mpath[108];

static bool can_run(void *o) { (void)o; return true; }
static void notify(void *o, unsigned q) { (void)o; (void)q; }
static void service(void *o, int fd) { (void)o; close(fd); }


/* The invariant the receive path once broke (a too-small buffer among good
 * ones was completed twice, another never): each offer of a receive chain
 * is completed at most once, and none is lost. */
static uint8_t rx_out[QSIZE];

static void rx_offer(struct fake_ring *r, uint64_t gpa, uint32_t len, uint32_t split)
{
	rx_out[fake_ring_offer(r, gpa, len, true, split)]++;
}

static void rx_check(struct fake_ring *r)
{
	struct vring_used_elem e;
	while (fake_ring_next_used(r, &e)) {
		if (e.id >= QSIZE || !rx_out[e.id])
			abort(); /* completed twice, or never offered */
		rx_out[e.id]--;
	}
	uint16_t used = r->seen;
	/* the engine holds no receive chain between calls: one it popped and
	 * neither completed nor gave back is lost to the guest */
	if (r->vq.last_avail != used)
		abort();
}

static void setup_once(void)
{
	if (fake_guest_init(&guest, MEM) < 0)
		abort();
	ram = guest.ram;
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&lock, &ma);
	ev_init(&ev);
	snprintf(lpath, sizeof(lpath), "/tmp/fuzz_vsock_%d.l", getpid());
	snprintf(cpath, sizeof(cpath), "/tmp/fuzz_vsock_%d.c", getpid());
	snprintf(mpath, sizeof(mpath), "/tmp/fuzz_vsock_%d.m", getpid());
	unlink(lpath);
	listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", lpath);
	if (bind(listener, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(listener, 512) < 0)
		abort();
}

static uint32_t pick_port(uint8_t sel, uint32_t raw)
{
	static const uint32_t ports[] = { 1, 1024, 7, 1u << 30, (1u << 30) + 1, 2 };
	return sel < 6 ? ports[sel] : raw;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ram)
		setup_once();
	if (size < 2)
		return 0;
	memset(ram, 0, MEM);
	ev.nround_end = 0;
	struct fake_ring rx, tx, evq;
	fake_ring_start(&rx, &guest, RXQ_DESC, QSIZE, 2);
	fake_ring_start(&tx, &guest, TXQ_DESC, QSIZE, 2);
	fake_ring_start(&evq, &guest, EVQ_DESC, QSIZE, 2);
	uint8_t rxsplit = data[0];
	memset(rx_out, 0, sizeof(rx_out));
	for (unsigned i = 0; i < QSIZE / 2; i++) /* with bit 3, every fifth buffer is too small for a packet */
		rx_offer(&rx, RX_BUFS + i * RX_BUF, rxsplit & 8 && i % 5 == 2 ? 16 : RX_BUF - (rxsplit & 3) * 1100,
			 rxsplit & 4 ? HDR : 0);
	fake_ring_offer(&evq, RX_BUFS + (QSIZE - 1) * RX_BUF, data[1] & 7, true, 0);

	struct vsock_hooks hooks = { can_run, notify, NULL };
	struct vsock_queues q = { &rx.vq, &tx.vq, &evq.vq };
	struct vsock *v = vsock_new(&ev, &lock, &hooks, &q);
	char err[256];
	vsock_add_listen(v, 1, lpath, err, sizeof(err));
	vsock_add_service(v, 1024, service, NULL, err, sizeof(err));
	vsock_add_connect(v, 9, cpath, err, sizeof(err));
	vsock_add_mux(v, mpath, err, sizeof(err));
	int dialed = data[1] & 8 ? vsock_dial_guest(v, 5) : -1;

	/* packets: [flags][hdr 44][payload hdr.len, clipped to what is left] */
	size_t off = 2;
	uint64_t tx_gpa = TX_DATA;
	unsigned n = 0;
	pthread_mutex_lock(&lock);
	while (off + 1 + HDR <= size && n < 256) {
		uint8_t f = data[off++];
		uint8_t *p = ram + tx_gpa;
		memcpy(p, data + off, HDR);
		off += HDR;
		uint32_t len;
		memcpy(&len, p + 32, 4);
		size_t avail = size - off;
		size_t plen = len < avail ? len : avail;
		if (plen > 65536)
			plen = 65536;
		if (tx_gpa + HDR + plen > MEM - 0x1000)
			break;
		memcpy(p + HDR, data + off, plen);
		off += plen;
		if (f & 1) { /* a well-formed header most of the time */
			uint64_t src = 3, dst = 2;
			uint16_t type = 1;
			memcpy(p, &src, 8);
			memcpy(p + 8, &dst, 8);
			memcpy(p + 34, &type, 2);
			uint32_t l32 = (uint32_t)plen;
			memcpy(p + 32, &l32, 4);
			uint32_t sp, dp;
			memcpy(&sp, p + 16, 4);
			memcpy(&dp, p + 20, 4);
			sp = pick_port((f >> 1) & 7, sp);
			dp = pick_port((f >> 4) & 7, dp);
			memcpy(p + 16, &sp, 4);
			memcpy(p + 20, &dp, 4);
		}
		fake_ring_offer(&tx, tx_gpa, HDR + plen, false, f & 0x80 ? HDR : 0);
		tx_gpa += (HDR + plen + 15) & ~15ul;
		n++;
		if (n % 8 == 0 || off + 1 + HDR > size) {
			vsock_tx_kick(v);
			rx_check(&rx);
			/* the guest hands its receive buffers back */
			uint16_t used = *(uint16_t *)(ram + rx.vq.used_gpa + 2);
			while ((uint16_t)(rx.avail - used) < QSIZE / 2)
				rx_offer(&rx, RX_BUFS + (rx.avail % (QSIZE / 2)) * RX_BUF,
					 rxsplit & 8 && rx.avail % 5 == 2 ? 16 : RX_BUF, 0);
			vsock_rx_kick(v);
			vsock_event_kick(v);
			rx_check(&rx);
		}
	}
	if (data[1] & 16)
		vsock_transport_reset(v);
	vsock_event_kick(v);
	rx_check(&rx);
	vsock_reset(v);
	pthread_mutex_unlock(&lock);
	if (dialed >= 0)
		close(dialed);
	vsock_free(v);
	for (int fd; (fd = accept(listener, NULL, NULL)) >= 0;)
		close(fd);
	return 0;
}
