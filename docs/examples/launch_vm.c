/* Example: build a VM with libkvkit and launch kvkit with it.
 *
 *   cc launch_vm.c $(pkg-config --cflags --libs kvkit) -o launch_vm
 *   ./launch_vm [--print] KVKIT KERNEL INITRD CMDLINE
 *
 * The VM: 2 vCPUs, 1 GiB, direct Linux boot, the console on stdio, an
 * entropy device. --print shows the command line and the JSON document
 * instead of starting it. */
#include <kvkit/cmdline.h>
#include <kvkit/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int print_only = argc > 1 && !strcmp(argv[1], "--print");
	char **a = argv + 1 + print_only;
	if (argc - 1 - print_only != 4) {
		fprintf(stderr, "usage: %s [--print] KVKIT KERNEL INITRD CMDLINE\n", argv[0]);
		return 2;
	}
	struct kv_config vm;
	kv_config_init(&vm);
	vm.cpus = 2;
	vm.memory_bytes = 1024ULL << 20;
	if (kv_config_set_linux_boot(&vm, a[1], a[2], a[3]) < 0 || !kv_add_serial(&vm, KV_SERIAL_STDIO, NULL) ||
	    !kv_add_simple(&vm, KV_DEV_VIRTIO_RNG)) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}

	char err[256], **args;
	int n;
	if (kv_config_to_argv(&vm, &args, &n, err, sizeof(err)) < 0) {
		fprintf(stderr, "cannot build the command line: %s\n", err);
		return 1;
	}
	if (print_only) {
		char *json = kv_config_to_json(&vm, 0);
		for (int i = 0; i < n; i++)
			printf("%s%s", args[i], i + 1 < n ? " " : "\n");
		printf("%s\n", json);
		free(json);
		kv_free_strv(args, n);
		kv_config_free(&vm);
		return 0;
	}
	/* argv for exec: the program, then the options */
	char **full = calloc(n + 2, sizeof(char *));
	if (!full)
		return 1;
	full[0] = a[0];
	memcpy(full + 1, args, n * sizeof(char *));
	execv(a[0], full);
	perror(a[0]);
	return 1;
}
