#include "dynlib.h"
#include <dlfcn.h>
#include <stdio.h>

int dynlib_load(const char *what, const char *soname, const char *pkg, const char *const *names, void **slots,
		size_t n, char *err, size_t errlen)
{
	if (n && slots[0])
		return 0; /* loaded before */
	void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(err, errlen, "%s: cannot load %s (Debian package %s): %s", what, soname, pkg, dlerror());
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!(slots[i] = dlsym(h, names[i]))) {
			snprintf(err, errlen, "%s: %s lacks %s", what, soname, names[i]);
			for (size_t j = 0; j < i; j++)
				slots[j] = NULL;
			dlclose(h);
			return -1;
		}
	}
	return 0;
}
