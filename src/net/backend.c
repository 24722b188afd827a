/* Which backend a virtio-net NIC gets (net.h lists them). */
#include "net.h"

int net_backend_open(const struct kv_net *cfg, struct eventloop *ev, struct net_backend **out, char *err, size_t errlen)
{
	if (cfg->nat)
		return net_slirp_open(cfg, ev, out, err, errlen);
	if (cfg->stream)
		return net_stream_open(cfg, ev, out, err, errlen);
	return net_fd_open(cfg, ev, out, err, errlen);
}
