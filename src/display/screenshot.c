/* GET /vm/screenshot: the first GPU's scanout as a PNG (libpng's
 * simplified API writes it to memory in one call). */
#include "screenshot.h"
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include "../virtio/devices.h"

int screenshot_png(struct vm *vm, uint8_t **png, size_t *len, char *err, size_t errlen)
{
	uint8_t *rgb;
	uint32_t w, h;
	int rc = virtio_gpu_scanout_rgb(vm, &rgb, &w, &h);
	if (rc == -ENODEV) {
		snprintf(err, errlen, "the VM has no virtio-gpu device");
		return rc;
	}
	if (rc < 0) {
		snprintf(err, errlen, "the guest has not set up a display yet");
		return rc;
	}
	png_image img = { .version = PNG_IMAGE_VERSION, .width = w, .height = h, .format = PNG_FORMAT_RGB };
	png_alloc_size_t size = 0;
	uint8_t *out = NULL;
	rc = -ENOMEM;
	if (png_image_write_to_memory(&img, NULL, &size, 0, rgb, 0, NULL) && (out = malloc(size)) &&
	    png_image_write_to_memory(&img, out, &size, 0, rgb, 0, NULL)) {
		*png = out;
		*len = size;
		rc = 0;
	} else {
		snprintf(err, errlen, "cannot encode the screenshot: %s", img.message[0] ? img.message : "out of memory");
		free(out);
	}
	png_image_free(&img);
	free(rgb);
	return rc;
}
