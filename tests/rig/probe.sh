#!/bin/bash
# Decide how guests get real KVM on this machine. Prints "direct" when the
# host's /dev/kvm boots stock kernels, "rig" when they must run inside the
# nested rig (PVM's /dev/kvm, or no hardware virtualization), and the reason
# on stderr. KVKIT_E2E_MODE=direct|rig overrides.
if [ -n "${KVKIT_E2E_MODE:-}" ]; then echo "$KVKIT_E2E_MODE"; echo "probe: forced by KVKIT_E2E_MODE" >&2; exit 0; fi
if [ -d /sys/module/kvm_pvm ]; then
	echo "probe: /dev/kvm is PVM (kvm_pvm loaded): it cannot boot a stock kernel" >&2; echo rig; exit 0
fi
if [ ! -c /dev/kvm ]; then echo "probe: no /dev/kvm" >&2; echo rig; exit 0; fi
if ! grep -qE '\b(vmx|svm)\b' /proc/cpuinfo; then
	echo "probe: the CPU shows no VMX/SVM" >&2; echo rig; exit 0
fi
echo "probe: hardware KVM" >&2
echo direct
