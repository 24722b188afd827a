#!/usr/bin/python3
"""bench/gpu: full-screen frames per second through virtio-gpu, kvkit vs
QEMU's -device virtio-gpu-pci, the same guest (Debian's kernel and its
virtio-gpu driver), the same mode (800x600), each showing its screen in a
window on the same Xvfb display (kvkit --gui, QEMU -display sdl).

In the guest, kvkit-display drmloop fills a DRM dumb buffer and marks it
dirty, frame after frame, for BENCH_RUNTIME seconds: the driver sends each
frame's transfer and flush and waits for the host to finish them, so the
rate is the VMM's. Also: the VMM's host CPU time per frame (its display
thread included). BENCH_ROUNDS rounds (default 3), alternating; medians.
Inside the nested rig these are nested-emulation figures: read the ratios."""
import os
import random
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from guest_tools import cpu_seconds  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KVKIT = os.path.join(ROOT, "build", "kvkit")
GUEST = os.path.join(ROOT, "build", "guest-full")
RUNTIME = int(os.environ.get("BENCH_RUNTIME", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
W, H, MEM = 800, 600, 512
RUN = ("i=0; while [ ! -e /dev/dri/card0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "
       "echo JOB-START; kvkit-display drmloop %d" % RUNTIME)
CMDLINE = 'console=ttyS0 quiet hvcwait=0 run="%s"' % RUN


def vmms():
    kernel, initrd = os.path.join(GUEST, "vmlinuz"), os.path.join(GUEST, "initrd.img")
    return {
        "kvkit": [KVKIT, "--cpus", "1", "--memory", str(MEM), "--bootloader",
                  "linux,kernel=%s,initrd=%s,cmdline=%s" % (kernel, initrd, CMDLINE),
                  "--device", "virtio-serial,stdio", "--device", "virtio-gpu,width=%d,height=%d" % (W, H),
                  "--device", "virtio-input,keyboard", "--gui"],
        "qemu": ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-smp", "1", "-m", str(MEM),
                 "-M", "q35", "-kernel", kernel, "-initrd", initrd, "-append", CMDLINE, "-nodefaults",
                 "-no-user-config", "-no-reboot", "-serial", "stdio", "-display", "sdl",
                 "-device", "virtio-gpu-pci,xres=%d,yres=%d" % (W, H), "-device", "virtio-keyboard-pci"],
    }


def run_vmm(name, cmd, env):
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    start, got = None, None
    deadline = time.monotonic() + RUNTIME + 240
    for raw in p.stdout:
        line = raw.decode(errors="replace").strip()
        if "JOB-START" in line:
            start = cpu_seconds(p.pid)
        m = re.search(r"DRM-FPS ([0-9.]+) (\d+) ([0-9.]+) (\d+x\d+)", line)
        if m and start is not None:
            got = (float(m.group(1)), int(m.group(2)), cpu_seconds(p.pid) - start, m.group(4))
            break
        if time.monotonic() > deadline:
            break
    p.kill()
    err = p.stderr.read().decode(errors="replace")
    p.wait()
    if not got:
        sys.exit("%s: no DRM-FPS line; stderr:\n%s" % (name, err[-2000:]))
    return got


def main():
    n = random.randint(100, 900)
    xvfb = subprocess.Popen(["Xvfb", ":%d" % n, "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not os.path.exists("/tmp/.X11-unix/X%d" % n):
        time.sleep(0.1)
    # SDL's software renderer for QEMU's window: its default picks OpenGL,
    # which on a display without a GPU is Mesa's CPU rasterizer (kvkit draws
    # with plain surface blits either way); BENCH_SDL_RENDER=default keeps it
    env = dict(os.environ, DISPLAY=":%d" % n, SDL_AUDIODRIVER="dummy")
    if os.environ.get("BENCH_SDL_RENDER", "software") != "default":
        env["SDL_RENDER_DRIVER"] = "software"
    env.pop("WAYLAND_DISPLAY", None)
    res = {name: [] for name in vmms()}
    try:
        for r in range(ROUNDS):
            for name, cmd in vmms().items():
                fps, frames, cpu, mode = run_vmm(name, cmd, env)
                res[name].append((fps, cpu / frames * 1000))
                print("round %d %-6s %7.1f frames/s  %6.3f ms VMM CPU/frame  (%d frames, %s)"
                      % (r + 1, name, fps, cpu / frames * 1000, frames, mode), flush=True)
    finally:
        xvfb.terminate()
    med = {k: (statistics.median(f for f, _ in v), statistics.median(c for _, c in v)) for k, v in res.items()}
    print("\nmedians over %d rounds, %dx%d, %d s each, SDL renderer: %s"
          % (ROUNDS, W, H, RUNTIME, env.get("SDL_RENDER_DRIVER", "SDL's default")))
    print("%-8s %12s %18s" % ("", "frames/s", "VMM CPU ms/frame"))
    for k, (f, c) in med.items():
        print("%-8s %12.1f %18.3f" % (k, f, c))
    print("kvkit/qemu: frames/s %.2f (higher is better), CPU per frame %.2f (lower is better)"
          % (med["kvkit"][0] / med["qemu"][0], med["kvkit"][1] / med["qemu"][1]))


main()
