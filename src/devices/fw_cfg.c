/* fw_cfg: see fw_cfg.h. Items are immutable once the vCPUs run; the lock
 * only guards the selector and the read offset. */
#include "fw_cfg.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../util/bytes.h"

void fw_cfg_init(struct fw_cfg *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->next_file = FW_CFG_FILE_FIRST;
	c->cur = -1;
}

static int add(struct fw_cfg *c, uint16_t key, const char *name, const void *data, uint32_t len)
{
	if (c->n >= FW_CFG_MAX_ITEMS || (name && strlen(name) >= FW_CFG_NAME_MAX))
		return -1;
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return -1;
	if (len)
		memcpy(copy, data, len);
	struct fw_cfg_item *it = &c->item[c->n++];
	it->key = key;
	snprintf(it->name, sizeof(it->name), "%s", name ? name : "");
	it->data = copy;
	it->len = len;
	return 0;
}

int fw_cfg_add(struct fw_cfg *c, uint16_t key, const void *data, uint32_t len)
{
	return add(c, key, NULL, data, len);
}

int fw_cfg_add_file(struct fw_cfg *c, const char *name, const void *data, uint32_t len)
{
	return add(c, c->next_file++, name, data, len);
}


/* The directory: big-endian count, then {be32 size, be16 key, be16 0,
 * name[56]} per file, sorted by name as QEMU does. */
int fw_cfg_finish(struct fw_cfg *c)
{
	unsigned files = 0;
	for (unsigned i = 0; i < c->n; i++)
		files += c->item[i].name[0] != 0;
	uint32_t len = 4 + files * 64;
	uint8_t *dir = calloc(1, len);
	if (!dir)
		return -1;
	wr32be(dir, files);
	uint8_t *p = dir + 4;
	const char *last = "";
	for (unsigned k = 0; k < files; k++, p += 64) { /* selection sort: a few dozen names */
		const struct fw_cfg_item *best = NULL;
		for (unsigned i = 0; i < c->n; i++) {
			const struct fw_cfg_item *it = &c->item[i];
			if (it->name[0] && strcmp(it->name, last) > 0 && (!best || strcmp(it->name, best->name) < 0))
				best = it;
		}
		if (!best)
			break;
		wr32be(p, best->len);
		wr16be(p + 4, best->key);
		memcpy(p + 8, best->name, strlen(best->name));
		last = best->name;
	}
	int r = fw_cfg_add(c, FW_CFG_FILE_DIR, dir, len);
	free(dir);
	return r;
}

void fw_cfg_free(struct fw_cfg *c)
{
	for (unsigned i = 0; i < c->n; i++)
		free(c->item[i].data);
	c->n = 0;
}

void fw_cfg_io(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	struct fw_cfg *c = opaque;
	pthread_mutex_lock(&c->lock);
	if (off == 0 && is_write) { /* selector: 16 bits, little-endian on x86 */
		uint16_t key = data[0] | (len > 1 ? data[1] << 8 : 0);
		c->cur = -1;
		c->off = 0;
		for (unsigned i = 0; i < c->n; i++)
			if (c->item[i].key == key)
				c->cur = (int)i;
	} else if (off >= 1 && !is_write) { /* data: the next bytes of the item, then zeros */
		for (unsigned i = 0; i < len; i++) {
			const struct fw_cfg_item *it = c->cur >= 0 ? &c->item[c->cur] : NULL;
			data[i] = it && c->off < it->len ? it->data[c->off++] : 0;
		}
	} else if (!is_write) {
		memset(data, 0, len);
	}
	pthread_mutex_unlock(&c->lock);
}

int fw_cfg_add_file_to(void *fw_cfg, const char *name, const void *data, uint32_t len)
{
	return fw_cfg_add_file(fw_cfg, name, data, len);
}
