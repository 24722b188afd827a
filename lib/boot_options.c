/* libkvkit: the bootloaders' option tables (format in boot_options.h).
 * Each table is in the order vfkit writes the JSON keys. */
#include <string.h>
#include "boot_options.h"
#include "internal.h"

#define AT(f) offsetof(struct kv_bootloader, f)
#define NOPTS(a) (sizeof(a) / sizeof((a)[0]))

static const struct kv_boot_opt linux_opts[] = {
	{ .key = "kernel", .json = "vmlinuzPath", .off = AT(kernel) },
	{ .key = "cmdline", .json = "kernelCmdLine", .off = AT(cmdline), .trim_quotes = true },
	{ .key = "initrd", .json = "initrdPath", .off = AT(initrd) },
};

static const struct kv_boot_opt efi_opts[] = {
	{ .key = "variable-store", .json = "efiVariableStorePath", .off = AT(efi_store) },
	{ .key = "create", .json = "createVariableStore", .off = AT(efi_create), .flag = true },
	/* kvkit: the firmware and its variable-store template (docs/boot.md) */
	{ .key = "firmware", .json = "firmwarePath", .off = AT(efi_firmware), .omit_empty = true },
	{ .key = "vars-template", .json = "firmwareVarsTemplatePath", .off = AT(efi_vars_template), .omit_empty = true },
};

/* parsed, then refused on Linux */
static const struct kv_boot_opt macos_opts[] = {
	{ .key = "machineIdentifierPath", .json = "machineIdentifierPath", .off = AT(machine_id_path) },
	{ .key = "hardwareModelPath", .json = "hardwareModelPath", .off = AT(hw_model_path) },
	{ .key = "auxImagePath", .json = "auxImagePath", .off = AT(aux_image_path) },
};

static const struct kv_boot_desc boot_descs[] = {
	{ KV_BOOT_LINUX, "linux", "linuxBootloader", "Linux bootloaders", "Linux bootloader", "kernel", linux_opts,
	  NOPTS(linux_opts) },
	{ KV_BOOT_EFI, "efi", "efiBootloader", "EFI bootloaders", "EFI bootloader", "variable-store", efi_opts,
	  NOPTS(efi_opts) },
	{ KV_BOOT_MACOS, "macos", "macosBootloader", "macOS bootloaders", "macOS bootloader", NULL, macos_opts,
	  NOPTS(macos_opts) },
};

const struct kv_boot_desc *kv_boot_desc_by_type(const char *type)
{
	for (size_t i = 0; i < NOPTS(boot_descs); i++)
		if (!strcmp(boot_descs[i].type, type))
			return &boot_descs[i];
	return NULL;
}

const struct kv_boot_desc *kv_boot_desc_by_json_kind(const char *json_kind)
{
	for (size_t i = 0; i < NOPTS(boot_descs); i++)
		if (!strcmp(boot_descs[i].json_kind, json_kind))
			return &boot_descs[i];
	return NULL;
}

const struct kv_boot_desc *kv_boot_desc_of(enum kv_boot_kind kind)
{
	for (size_t i = 0; i < NOPTS(boot_descs); i++)
		if (boot_descs[i].kind == kind)
			return &boot_descs[i];
	return NULL;
}

const struct kv_boot_opt *kv_boot_opt_find(const struct kv_boot_desc *t, const char *key)
{
	for (size_t i = 0; i < t->nopts; i++)
		if (!strcmp(t->opts[i].key, key))
			return &t->opts[i];
	return NULL;
}

char **kv_boot_str(struct kv_bootloader *b, const struct kv_boot_opt *o)
{
	return (char **)((char *)b + o->off);
}

bool *kv_boot_flag(struct kv_bootloader *b, const struct kv_boot_opt *o)
{
	return (bool *)((char *)b + o->off);
}

int kv_boot_check_required(const struct kv_boot_desc *t, struct kv_bootloader *b, char *err, size_t errlen)
{
	if (!t->required)
		return 0;
	char *v = *kv_boot_str(b, kv_boot_opt_find(t, t->required));
	if (!v || !*v)
		return kv_fail(err, errlen, "missing mandatory '%s' option for %s", t->required, t->noun);
	return 0;
}
