# kvkit build. Plain make: one compiler invocation per file, no configure
# step, and the whole build fits on one screen.
#   make            kvkit, vfkit (hard link), libkvkit.a/.so
#   make check-unit unit tests (no KVM needed)
#   make SAN=1      AddressSanitizer + UndefinedBehaviorSanitizer build
#   make CC=clang   the same with clang
#   make fuzz       libFuzzer harnesses (clang)
#   make install PREFIX=/usr/local

CC ?= gcc
PREFIX ?= /usr/local
BUILD ?= build
VERSION := 0.1.0

WARN := -Wall -Wextra -Werror -Wno-unused-parameter
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 $(WARN) -Iinclude -I$(BUILD) -pthread -fno-strict-aliasing -DKVKIT_VERSION=\"$(VERSION)\"
LDFLAGS += -pthread
# liburing: the disk I/O engine; json-c: JSON for the API and the config library
# libnbd (NBD client) and libmicrohttpd (REST API, Ignition) are dlopen()ed on
# first use: src/util/dynlib.h
# libisofs: the cloud-init seed ISO
# libslirp: the nat network
# zlib, libzstd: compressed qcow2 clusters
# libseccomp: the sandbox's system-call filter
# libpng: GET /vm/screenshot
# SDL2 (the --gui window) and libvncserver (vnc=) are dlopen()ed too
LIBS := -luring -ldl -ljson-c -lisofs -lslirp -lz -lzstd -lseccomp -lpng
ifeq ($(SAN),1)
# KVKIT_TEST_HOOKS: test-only entry points (src/sandbox), never in release builds
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -DKVKIT_TEST_HOOKS
LDFLAGS += -fsanitize=address,undefined
endif

LIB_SRCS := lib/config.c lib/options.c lib/cmdline.c lib/json.c lib/print.c lib/device_options.c lib/device_tables.c lib/boot_options.c
CORE_SRCS := src/util/log.c src/vmm/guest_mem.c src/vmm/bus.c src/vmm/eventloop.c src/vmm/vm.c src/vmm/device.c src/vmm/device_types.c \
	src/arch/x86/cpu.c src/arch/x86/machine.c src/arch/x86/acpi.c src/arch/x86/smbios.c src/boot/linux.c src/devices/platform.c src/devices/uart.c \
	src/pci/pci.c src/pci/msix.c src/util/iov.c src/virtio/virtq.c src/virtio/virtio_pci.c src/virtio/console.c \
	src/virtio/rng.c src/virtio/blk.c src/virtio/blk_parse.c src/nvme/nvme.c src/nvme/nvme_ctrl.c src/block/file.c src/block/qcow2.c src/block/nbd.c src/block/nbd_lib.c src/util/dynlib.c src/util/mhd_lib.c \
	src/virtio/balloon.c src/virtio/balloon_pfns.c src/api/handler.c src/api/server.c src/services/cloudinit.c src/util/unixsock.c src/util/file_replace.c \
	src/virtio/net.c src/virtio/net_frames.c src/net/backend.c src/net/sockets.c src/net/fdnet.c src/net/stream.c src/net/stream_frames.c src/net/slirp.c \
	src/virtio/vsock.c src/vsock/vsock.c src/services/ignition.c src/services/timesync.c \
	src/virtio/fs.c src/fs/fuse_server.c src/fs/dax_window.c \
	src/boot/efi.c src/boot/kernel_unpack.c src/devices/pflash.c src/devices/fw_cfg.c src/devices/rtc.c src/devices/piix4_pm.c src/devices/rosetta.c \
	src/sandbox/sandbox.c src/sandbox/jail.c \
	src/virtio/gpu.c src/virtio/gpu_ctrl.c src/virtio/input.c src/virtio/input_model.c src/display/screenshot.c src/display/window.c src/display/keymap.c src/display/vnc.c src/display/sdl_lib.c src/display/vnc_lib.c
MAIN_SRCS := src/main.c

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_OBJS := $(call obj,$(LIB_SRCS))
CORE_OBJS := $(call obj,$(CORE_SRCS))

all: $(BUILD)/kvkit $(BUILD)/vfkit $(BUILD)/libkvkit.a $(BUILD)/libkvkit.so $(BUILD)/kvkit.pc

$(BUILD)/obj/%.o: %.c $(BUILD)/dsdt_aml.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The DSDT is written in ASL and compiled by iasl (acpica-tools).
$(BUILD)/dsdt_aml.h: src/arch/x86/dsdt.asl
	@mkdir -p $(BUILD)/iasl
	iasl -p $(BUILD)/iasl/dsdt -tc $< >/dev/null
	mv $(BUILD)/iasl/dsdt.hex $@

$(BUILD)/libkvkit.a: $(LIB_OBJS)
	ar rcs $@ $^

$(BUILD)/libkvkit.so: $(LIB_SRCS) include/kvkit/*.h lib/*.h
	$(CC) $(CFLAGS) -fPIC -shared -Wl,-soname,libkvkit.so.0 $(LIB_SRCS) -o $@ $(LDFLAGS) -ljson-c

$(BUILD)/kvkit.pc: Makefile
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: kvkit\nDescription: vfkit-compatible VM configuration library\nVersion: %s\nLibs: -L$${libdir} -lkvkit\nLibs.private: -ljson-c\nCflags: -I$${includedir}\n' '$(PREFIX)' '$(VERSION)' > $@

$(BUILD)/kvkit: $(call obj,$(MAIN_SRCS)) $(CORE_OBJS) $(BUILD)/libkvkit.a
	$(CC) $^ -o $@ $(LDFLAGS) $(LIBS)

# clients check that the process is called vfkit: a hard link makes both
# /proc/PID/comm and /proc/PID/exe say so
$(BUILD)/vfkit: $(BUILD)/kvkit
	ln -f $< $@

# ---- tests ----
TEST_LIBS := -lcmocka
# every tests/unit/test_*.c is a test; a test that needs more than libkvkit
# names its objects in a rule below (the pattern rule serves the rest)
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libkvkit.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) -ljson-c $(TEST_LIBS)

$(BUILD)/tests/test_api: tests/unit/test_api.c $(call obj,src/api/handler.c src/api/server.c src/util/log.c src/util/unixsock.c src/util/dynlib.c src/util/mhd_lib.c \
		src/sandbox/sandbox.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) -ljson-c -lseccomp $(TEST_LIBS)

$(BUILD)/tests/test_fuse: tests/unit/test_fuse.c $(call obj,src/fs/fuse_server.c src/fs/dax_window.c src/util/iov.c src/vmm/guest_mem.c \
		src/util/log.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(TEST_LIBS)

$(BUILD)/tests/test_vsock: tests/unit/test_vsock.c $(call obj,tests/lib/fake_guest.c src/vsock/vsock.c src/virtio/virtq.c src/util/iov.c src/vmm/guest_mem.c \
		src/vmm/eventloop.c src/util/log.c src/util/unixsock.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(TEST_LIBS)

$(BUILD)/tests/test_net_stream: tests/unit/test_net_stream.c $(call obj,tests/lib/stream_feed.c src/net/stream.c src/net/stream_frames.c src/net/sockets.c \
		src/vmm/eventloop.c src/util/log.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(TEST_LIBS)

$(BUILD)/tests/test_virtq: tests/unit/test_virtq.c $(call obj,src/virtio/virtq.c src/util/iov.c src/vmm/guest_mem.c src/util/log.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(TEST_LIBS)

$(BUILD)/tests/test_net_ctrl: tests/unit/test_net_ctrl.c $(call obj,src/virtio/net_frames.c src/virtio/virtq.c src/util/iov.c \
		src/vmm/guest_mem.c src/util/log.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(TEST_LIBS)

$(BUILD)/tests/test_sandbox: tests/unit/test_sandbox.c $(call obj,src/sandbox/sandbox.c src/sandbox/jail.c src/util/log.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) -lseccomp $(TEST_LIBS)

$(BUILD)/tests/test_device_registry: tests/unit/test_device_registry.c $(call obj,src/vmm/device.c) $(BUILD)/libkvkit.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) -ljson-c $(TEST_LIBS)

$(BUILD)/tests/test_log: tests/unit/test_log.c $(call obj,src/util/log.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(TEST_LIBS)

$(BUILD)/tests/test_display: tests/unit/test_display.c $(call obj,src/virtio/gpu_ctrl.c src/virtio/input_model.c src/display/keymap.c src/virtio/virtq.c src/util/log.c \
		src/util/iov.c src/vmm/guest_mem.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(TEST_LIBS)

$(BUILD)/tests/test_balloon: tests/unit/test_balloon.c $(call obj,src/virtio/balloon_pfns.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(TEST_LIBS)

$(BUILD)/tests/test_blk_parse: tests/unit/test_blk_parse.c $(call obj,src/virtio/blk_parse.c src/virtio/virtq.c src/util/iov.c src/vmm/guest_mem.c src/util/log.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(TEST_LIBS)

$(BUILD)/tests/test_kvm_api: tests/unit/test_kvm_api.c $(CORE_OBJS) $(BUILD)/libkvkit.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(LIBS) $(TEST_LIBS)

$(BUILD)/tests/test_pci: tests/unit/test_pci.c $(call obj,src/pci/pci.c src/vmm/bus.c src/util/log.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(TEST_LIBS)

$(BUILD)/tests/test_nvme: tests/unit/test_nvme.c $(call obj,tests/lib/fake_disk.c src/nvme/nvme_ctrl.c src/util/iov.c src/vmm/guest_mem.c \
		src/util/log.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(TEST_LIBS)

$(BUILD)/tests/test_qcow2: tests/unit/test_qcow2.c $(call obj,src/block/qcow2.c src/util/iov.c src/vmm/guest_mem.c src/util/log.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) -lz -lzstd $(TEST_LIBS)

$(BUILD)/tests/test_devices: tests/unit/test_devices.c $(CORE_OBJS) $(BUILD)/libkvkit.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(LIBS) $(TEST_LIBS)

# the test compresses with the libraries kvkit only dlopen()s
$(BUILD)/tests/test_kernel_unpack: tests/unit/test_kernel_unpack.c $(call obj,src/boot/kernel_unpack.c src/util/log.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) -ldl -llz4 -lz -llzma -lzstd $(TEST_LIBS)

# the documented example program, built against the installed-style library
$(BUILD)/examples/launch_vm: docs/examples/launch_vm.c $(BUILD)/libkvkit.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) -ljson-c

tests: $(UNIT_TESTS) $(BUILD)/examples/launch_vm

check-unit: $(UNIT_TESTS)
	@for t in $(UNIT_TESTS); do $$t || exit 1; done

# ---- fuzzing (clang + libFuzzer) ----
# UBSan findings abort, so the fuzz smoke in tests/run.sh counts them
FUZZ_CFLAGS := -std=gnu11 -g -O1 -Iinclude -I$(BUILD) -pthread -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined
FUZZERS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
fuzz: $(FUZZERS)
$(BUILD)/fuzz/fuzz_qcow2: tests/fuzz/fuzz_qcow2.c src/block/qcow2.c src/util/iov.c src/vmm/guest_mem.c src/util/log.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@ -lz -lzstd
$(BUILD)/fuzz/fuzz_nvme: tests/fuzz/fuzz_nvme.c tests/lib/fake_disk.c src/nvme/nvme_ctrl.c src/util/iov.c src/vmm/guest_mem.c src/util/log.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@
$(BUILD)/fuzz/fuzz_pci: tests/fuzz/fuzz_pci.c src/pci/pci.c src/vmm/bus.c src/util/log.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@
$(BUILD)/fuzz/fuzz_kernel: tests/fuzz/fuzz_kernel.c src/boot/kernel_unpack.c src/util/log.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@ -ldl
$(BUILD)/fuzz/fuzz_firmware: tests/fuzz/fuzz_firmware.c src/devices/pflash.c src/devices/fw_cfg.c src/devices/rtc.c \
		src/devices/piix4_pm.c src/pci/pci.c src/util/log.c src/vmm/bus.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@
$(BUILD)/fuzz/fuzz_fuse: tests/fuzz/fuzz_fuse.c src/fs/fuse_server.c src/fs/dax_window.c src/util/iov.c src/vmm/guest_mem.c src/util/log.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@
$(BUILD)/fuzz/fuzz_vsock: tests/fuzz/fuzz_vsock.c tests/lib/fake_guest.c src/vsock/vsock.c src/virtio/virtq.c src/util/iov.c src/vmm/guest_mem.c src/vmm/eventloop.c \
		src/util/log.c src/util/unixsock.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@
$(BUILD)/fuzz/fuzz_net_stream: tests/fuzz/fuzz_net_stream.c tests/lib/stream_feed.c src/net/stream_frames.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@
$(BUILD)/fuzz/fuzz_net: tests/fuzz/fuzz_net.c tests/lib/fake_guest.c src/virtio/net_frames.c src/virtio/virtq.c src/util/iov.c src/vmm/guest_mem.c src/util/log.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@
$(BUILD)/fuzz/fuzz_rest: tests/fuzz/fuzz_rest.c src/api/handler.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@ -ljson-c
$(BUILD)/fuzz/fuzz_config_json: tests/fuzz/fuzz_config_json.c tests/lib/devices_round_trip.c $(LIB_SRCS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@ -ljson-c
$(BUILD)/fuzz/fuzz_blk: tests/fuzz/fuzz_blk.c tests/lib/fake_guest.c src/virtio/blk_parse.c src/virtio/virtq.c src/util/iov.c src/vmm/guest_mem.c src/util/log.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@
$(BUILD)/fuzz/fuzz_gpu: tests/fuzz/fuzz_gpu.c tests/lib/fake_guest.c src/virtio/gpu_ctrl.c src/virtio/virtq.c src/util/iov.c src/vmm/guest_mem.c src/util/log.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@
$(BUILD)/fuzz/fuzz_input: tests/fuzz/fuzz_input.c tests/lib/fake_guest.c src/virtio/input_model.c src/virtio/virtq.c src/util/iov.c src/vmm/guest_mem.c src/util/log.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@
$(BUILD)/fuzz/fuzz_balloon: tests/fuzz/fuzz_balloon.c src/virtio/balloon_pfns.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@
$(BUILD)/fuzz/fuzz_virtq: tests/fuzz/fuzz_virtq.c tests/lib/fake_guest.c src/virtio/virtq.c src/util/iov.c src/vmm/guest_mem.c src/util/log.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@
$(BUILD)/fuzz/fuzz_cmdline: tests/fuzz/fuzz_cmdline.c tests/lib/devices_round_trip.c $(LIB_SRCS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@ -ljson-c

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/kvkit
	install -m 755 $(BUILD)/kvkit $(DESTDIR)$(PREFIX)/bin/kvkit
	ln -f $(DESTDIR)$(PREFIX)/bin/kvkit $(DESTDIR)$(PREFIX)/bin/vfkit
	install -m 644 $(BUILD)/libkvkit.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libkvkit.so $(DESTDIR)$(PREFIX)/lib/libkvkit.so.0
	ln -sf libkvkit.so.0 $(DESTDIR)$(PREFIX)/lib/libkvkit.so
	install -m 644 include/kvkit/*.h $(DESTDIR)$(PREFIX)/include/kvkit/
	install -m 644 $(BUILD)/kvkit.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/

clean:
	rm -rf $(BUILD)

.PHONY: all tests check-unit fuzz install clean
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
