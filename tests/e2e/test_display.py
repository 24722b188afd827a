"""The screen, keyboard and mouse end to end (issue 26): a real Debian
kernel (its virtio-gpu and virtio-input drivers) draws into its
framebuffer and reads its input devices; kvkit shows the screen in an SDL
window on an Xvfb display and over GET /vm/screenshot; xdotool types and
moves the pointer into the window; closing the window powers the guest off."""
import ctypes
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import time

import pytest

from conftest import KVKIT, ROOT, free_port, needs_kvm
from pixels import Image, png, xwd
from rest_client import Api, Lines

FULL = os.environ.get("KVKIT_GUEST_FULL", os.path.join(ROOT, "build", "guest-full"))
CLOUD = os.path.join(ROOT, "build", "guest")  # no virtio-gpu driver
needs_x = pytest.mark.skipif(not shutil.which("Xvfb") or not shutil.which("xdotool"),
                             reason="Xvfb and xdotool missing (scripts/setup.sh installs them)")
RED, BLUE, BLACK, MAGENTA = (255, 0, 0), (0, 0, 255), (0, 0, 0), (255, 0, 255)
# wait for the framebuffer, stop the console cursor blinking over the
# pattern, draw two rectangles, then report what the keyboard sends
DRAW = ("acpid -d & i=0; while [ ! -e /dev/fb0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "
        "[ -e /dev/dri/card0 ] && echo DRI-CARD0; kvkit-display info; "
        "echo 0 > /sys/class/graphics/fbcon/cursor_blink; echo kvkit: the guest console on virtio-gpu > /dev/tty1; "
        "kvkit-display fill 100 100 200 100 ff0000 && kvkit-display fill 400 300 100 150 0000ff && echo PATTERN-DRAWN; ")


def guest_cmd(run, *args, devices=("virtio-serial,stdio",), guest=FULL):
    """kvkit booting the full-kernel guest (or the cloud one: guest=CLOUD)."""
    cmd = [KVKIT, "--cpus", "1", "--memory", "512", "--bootloader",
           'linux,kernel=%s/vmlinuz,initrd=%s/initrd.img,cmdline=console=ttyS0 quiet run="%s"' % (guest, guest, run)]
    for d in devices:
        cmd += ["--device", d]
    return cmd + list(args)


def reap(p):
    """After a test, whatever happened: kvkit is gone."""
    if p.poll() is None:
        p.kill()
        p.wait()


@pytest.fixture
def xvfb(tmp_path):
    n = random.randint(100, 900)
    while os.path.exists("/tmp/.X11-unix/X%d" % n):
        n += 1
    p = subprocess.Popen(["Xvfb", ":%d" % n, "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                         stdout=subprocess.DEVNULL, stderr=open(str(tmp_path / "xvfb.log"), "w"))
    deadline = time.monotonic() + 30
    while not os.path.exists("/tmp/.X11-unix/X%d" % n):
        assert p.poll() is None and time.monotonic() < deadline, open(str(tmp_path / "xvfb.log")).read()
        time.sleep(0.1)
    env = dict(os.environ, DISPLAY=":%d" % n)
    env.pop("WAYLAND_DISPLAY", None)
    yield env
    p.terminate()
    p.wait(timeout=10)


def x(env, *args):
    return subprocess.run(list(args), env=env, check=True, capture_output=True, timeout=30).stdout.decode()


def kvkit_window(env):
    """The window's id and where it is on the X screen."""
    wid = x(env, "xdotool", "search", "--sync", "--name", "^kvkit$").split()[0]
    geo = dict(l.split("=") for l in x(env, "xdotool", "getwindowgeometry", "--shell", wid).split())
    return wid, int(geo["X"]), int(geo["Y"]), int(geo["WIDTH"]), int(geo["HEIGHT"])


def close_window(env, wid):
    """What a window manager's close button does: WM_DELETE_WINDOW."""
    X = ctypes.CDLL("libX11.so.6")
    X.XOpenDisplay.restype = ctypes.c_void_p
    X.XOpenDisplay.argtypes = [ctypes.c_char_p]
    X.XInternAtom.restype = ctypes.c_ulong
    X.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    X.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    X.XFlush.argtypes = X.XCloseDisplay.argtypes = [ctypes.c_void_p]

    class ClientMessage(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                    ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                    ("format", ctypes.c_int), ("data", ctypes.c_long * 5), ("pad", ctypes.c_long * 12)]
    d = X.XOpenDisplay(env["DISPLAY"].encode())
    assert d
    ev = ClientMessage(type=33, window=int(wid), format=32,  # 33: ClientMessage
                       message_type=X.XInternAtom(d, b"WM_PROTOCOLS", 0))
    ev.data[0] = X.XInternAtom(d, b"WM_DELETE_WINDOW", 0)
    X.XSendEvent(d, int(wid), 0, 0, ctypes.byref(ev))
    X.XFlush(d)
    X.XCloseDisplay(d)


def screenshot(api):
    c = api.conn()
    try:
        c.request("GET", "/vm/screenshot")
        r = c.getresponse()
        return r.status, r.read(), r.getheader("Content-Type")
    finally:
        c.close()


def wait_screen(api, checks, timeout=30):
    """Screenshots until every (x, y, colour) holds; returns the image."""
    deadline, img = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        st, body, ctype = screenshot(api)
        if st == 200:
            assert ctype == "image/png"
            img = png(body)
            if all(img.pixel(px, py) == c for px, py, c in checks):
                return img
        time.sleep(0.3)
    raise AssertionError("the screen never showed the pattern: %s" %
                         ([(px, py, c, img.pixel(px, py)) for px, py, c in checks] if img else "no screenshot"))


def events(out, n):
    got = [l.split()[1:] for l in out.lines if l.startswith("INPUT-EV ")]
    return [tuple(int(v) for v in e) for e in got][:n] if len(got) >= n else None


# the rectangles' corners and just outside them
PATTERN = [(100, 100, RED), (299, 199, RED), (99, 150, BLACK), (300, 150, BLACK), (150, 200, BLACK),
           (400, 300, BLUE), (499, 449, BLUE), (450, 450, BLACK), (500, 400, BLACK), (700, 50, BLACK)]


@needs_kvm
@needs_x
def test_gui_window_screen_keys_and_close(xvfb, tmp_path):
    """--gui and no display device of its own: kvkit adds a GPU and a
    keyboard (and says so), the guest has /dev/dri/card0 and draws; the
    window and the screenshot show the drawing where it was drawn; keys
    typed into the window reach the guest's keyboard; the guest's cursor is
    drawn in the window where the guest put it; closing the window
    powers the guest off and kvkit exits 0."""
    sock = str(tmp_path / "api.sock")
    run = DRAW + "kvkit-display events 'kvkit virtio keyboard' 4; echo KEYS-DONE; kvkit-display cursor 600 50 & sleep 600"
    errf = open(str(tmp_path / "err"), "w+")
    p = subprocess.Popen(guest_cmd(run, "--gui", "--restful-uri", "unix://" + sock), env=xvfb,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf)
    out = Lines(p.stdout)
    try:
        out.wait(lambda o: "PATTERN-DRAWN" in o.lines and any(l.startswith("INPUT-READY") for l in o.lines), 180)
        assert "DRI-CARD0" in out.lines
        assert "FB-INFO 800x600 stride 3200 bpp 32" in out.lines, out.lines  # the EDID's mode
        api = Api(unix=sock)
        wait_screen(api, PATTERN)
        # keep the picture: docs/images/screen.png is one of these
        st, body, _ = screenshot(api)
        os.makedirs(os.path.join(ROOT, "build", "test-logs"), exist_ok=True)
        with open(os.path.join(ROOT, "build", "test-logs", "display-screen.png"), "wb") as f:
            f.write(body)
        # the X display shows the same, in the window
        wid, wx, wy, ww, wh = kvkit_window(xvfb)
        assert (ww, wh) == (800, 600)
        deadline = time.monotonic() + 20
        while True:
            img = xwd(subprocess.run(["xwd", "-root", "-silent"], env=xvfb, check=True, capture_output=True).stdout)
            seen = [(px, py, img.pixel(wx + px, wy + py)) for px, py, _ in PATTERN]
            if all(img.pixel(wx + px, wy + py) == c for px, py, c in PATTERN) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert all(img.pixel(wx + px, wy + py) == c for px, py, c in PATTERN), seen
        # keys: with no window manager the focus follows the pointer
        x(xvfb, "xdotool", "mousemove", str(wx + 400), str(wy + 300))
        x(xvfb, "xdotool", "key", "a", "b")
        out.wait(lambda o: "KEYS-DONE" in o.lines, 60)
        assert events(out, 4) == [(1, 30, 1), (1, 30, 0), (1, 48, 1), (1, 48, 0)], out.lines  # KEY_A, KEY_B
        # the guest's cursor, drawn over the screen where the guest put it:
        # its opaque corner magenta, its clear part showing the screen
        out.wait(lambda o: "CURSOR-SET" in o.lines, 60)
        deadline = time.monotonic() + 20
        while True:
            img = xwd(subprocess.run(["xwd", "-root", "-silent"], env=xvfb, check=True, capture_output=True).stdout)
            seen = (img.pixel(wx + 605, wy + 55), img.pixel(wx + 631, wy + 81), img.pixel(wx + 645, wy + 95))
            if seen == (MAGENTA, MAGENTA, BLACK) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert seen == (MAGENTA, MAGENTA, BLACK), seen
        close_window(xvfb, wid)
        assert p.wait(timeout=60) == 0
        assert "KVKIT-POWER-BUTTON" in out.lines
    finally:
        reap(p)
    errf.seek(0)
    err = errf.read()
    assert "--gui flag specified but no virtio-gpu device configured, automatically adding it" in err
    assert "--gui flag specified but no virtio-input device configured, automatically adding it" in err
    assert "the window was closed" in err


@needs_kvm
@needs_x
def test_podman_debug_argv_pointer_and_inspect(xvfb, tmp_path):
    """podman machine's debug flags (its own GPU, pointer and keyboard,
    --gui) with the rest of its argv shape (rng, vsock, serial log file,
    REST on TCP): the guest gets a tablet whose ABS values put the pointer
    at the window's centre, /vm/inspect shows the devices as vfkit writes
    them, and podman's REST stop ends it."""
    log = str(tmp_path / "console.log")
    port = free_port()
    run = DRAW + "kvkit-display events 'kvkit virtio tablet' 4; echo POINTER-DONE; sleep 600"
    p = subprocess.Popen(guest_cmd(run, "--restful-uri", "tcp://localhost:%d" % port,
                                        "--device", "virtio-gpu,width=800,height=600",
                                        "--device", "virtio-input,pointing", "--device", "virtio-input,keyboard",
                                        "--gui", devices=["virtio-rng", "virtio-vsock,port=1025,socketURL=%s,listen"
                                                          % (tmp_path / "ready.sock"),
                                                          "virtio-serial,logFilePath=" + log]),
                         env=xvfb, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    api = Api(port=port)

    def console():
        try:
            return open(log).read().splitlines()
        except OSError:
            return []
    try:
        deadline = time.monotonic() + 180
        while not any(l.startswith("INPUT-READY") for l in console()):
            assert p.poll() is None and time.monotonic() < deadline, console()[-20:]
            time.sleep(0.2)
        assert api.state() == "VirtualMachineStateRunning"
        wid, wx, wy, ww, wh = kvkit_window(xvfb)
        # a corner first: the pointer may already be at the window's centre
        x(xvfb, "xdotool", "mousemove", str(wx + 10), str(wy + 10))
        time.sleep(0.5)
        x(xvfb, "xdotool", "mousemove", str(wx + ww // 2), str(wy + wh // 2))
        while "POINTER-DONE" not in console():
            assert time.monotonic() < deadline, console()[-20:]
            time.sleep(0.2)
        evs = [tuple(int(v) for v in l.split()[1:]) for l in console() if l.startswith("INPUT-EV ")]
        centre = {code: v for t, code, v in evs if t == 3}  # EV_ABS, the last value of each axis
        assert set(centre) == {0, 1} and len(evs) == 4, evs
        assert all(abs(v - 16383) <= 64 for v in centre.values()), evs
        st, body, _ = api.request("GET", "/vm/inspect")
        devs = json.loads(body)["devices"]
        gpus = [d for d in devs if d["kind"] == "virtiogpu"]
        assert gpus == [{"kind": "virtiogpu", "usesGUI": True, "width": 800, "height": 600}], gpus
        assert [d["inputType"] for d in devs if d["kind"] == "virtioinput"] == ["pointing", "keyboard"]
        api.post("Stop")
        assert p.wait(timeout=60) == 0
    finally:
        reap(p)
    err = p.stderr.read().decode()
    assert "automatically adding" not in err  # podman brought its own devices


def test_gui_without_display_fails_and_leaves_nothing(tmp_path):
    """No display: the spec's line, exit 1, before anything is created
    (no REST socket, no pidfile)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    sock, pid = str(tmp_path / "api.sock"), str(tmp_path / "pid")
    r = subprocess.run(guest_cmd("true", "--gui", "--restful-uri", "unix://" + sock, "--pidfile", pid),
                       env=env, capture_output=True, timeout=30)
    assert r.returncode == 1
    assert r.stderr.decode().strip().splitlines()[-1] == \
        "Error: --gui: no display available (WAYLAND_DISPLAY/DISPLAY unset or unreachable)"
    assert not os.path.exists(sock) and not os.path.exists(pid)
    # a display that is not there is the same error
    env["DISPLAY"] = ":%d" % random.randint(3000, 4000)
    r = subprocess.run(guest_cmd("true", "--gui"), env=env, capture_output=True, timeout=30)
    assert r.returncode == 1 and "no display available" in r.stderr.decode(), r.stderr.decode()


@needs_kvm
def test_screenshot_without_gpu_or_before_drawing(tmp_path):
    """GET /vm/screenshot: 400 without a GPU; with a GPU the guest never
    set up (a kernel without the driver), 409."""
    for devices, status in ((["virtio-serial,stdio"], 400), (["virtio-serial,stdio", "virtio-gpu"], 409)):
        sock = str(tmp_path / ("api%d.sock" % status))
        p = subprocess.Popen(guest_cmd("echo UP; sleep 600", "--restful-uri", "unix://" + sock, devices=devices,
                                            guest=CLOUD),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = Lines(p.stdout)
        try:
            out.wait(lambda o: "UP" in o.lines, 120)
            st, body, ctype = screenshot(Api(unix=sock))
            assert st == status and ctype.startswith("application/json"), (st, body)
            assert re.search(b"no virtio-gpu device" if status == 400 else b"not set up a display", body), body
            Api(unix=sock).post("HardStop")
            p.wait(timeout=30)
        finally:
            reap(p)


class Rfb:
    """The client side of RFB 3.8 that the tests need: no security, raw
    frames, key and pointer events."""

    def __init__(self, sock):
        self.s = sock
        self.s.settimeout(20)
        assert self.read(12).startswith(b"RFB 003.")
        self.s.sendall(b"RFB 003.008\n")
        types = self.read(self.read(1)[0])
        assert 1 in types, types  # None
        self.s.sendall(b"\x01")
        assert self.read(4) == b"\0\0\0\0"
        self.s.sendall(b"\x01")  # shared
        self.width, self.height = struct.unpack(">HH", self.read(4))
        fmt = self.read(16)
        self.bpp, self.big_endian = fmt[0], fmt[2]
        self.shifts = fmt[10:13]  # red, green, blue
        self.name = self.read(struct.unpack(">I", self.read(4))[0]).decode()
        assert self.bpp == 32
        self.s.sendall(struct.pack(">BxHii", 2, 2, 0, -239))  # SetEncodings: raw, RichCursor
        self.cursor = None  # the last cursor shape: (w, h, hot x, hot y, pixel(x, y), opaque(x, y))

    def read(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            assert c, "the VNC server closed the connection"
            b += c
        return b

    def frame(self):
        """A whole frame, as an Image."""
        self.s.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, self.width, self.height))
        while True:
            t = self.read(1)[0]
            if t == 0:
                break
            assert t in (2,), t  # Bell; nothing else is expected unasked
        self.read(1)
        pix = bytearray(self.width * self.height * 4)
        for _ in range(struct.unpack(">H", self.read(2))[0]):
            x0, y0, w, h, enc = struct.unpack(">HHHHi", self.read(12))
            if enc == -239:  # the cursor: pixels, then a bit mask (rows of whole bytes)
                self.cursor_shape(x0, y0, w, h, self.read(w * h * 4), self.read((w + 7) // 8 * h))
                continue
            assert enc == 0, enc
            data = self.read(w * h * 4)
            for row in range(h):
                at = ((y0 + row) * self.width + x0) * 4
                pix[at:at + w * 4] = data[row * w * 4:(row + 1) * w * 4]
        order = "big" if self.big_endian else "little"
        width = self.width

        def pixel(px, py):
            v = int.from_bytes(pix[(py * width + px) * 4:(py * width + px) * 4 + 4], order)
            return tuple((v >> s) & 0xff for s in self.shifts)
        return Image(self.width, self.height, pixel)

    def cursor_shape(self, hx, hy, w, h, data, mask):
        order = "big" if self.big_endian else "little"

        def pixel(px, py):
            v = int.from_bytes(data[(py * w + px) * 4:(py * w + px) * 4 + 4], order)
            return tuple((v >> s) & 0xff for s in self.shifts)

        def opaque(px, py):
            return bool(mask[py * ((w + 7) // 8) + px // 8] & (0x80 >> (px % 8)))
        self.cursor = (w, h, hx, hy, pixel, opaque)

    def key(self, sym):
        for down in (1, 0):
            self.s.sendall(struct.pack(">BBxxI", 4, down, sym))

    def pointer(self, x, y, mask=0):
        self.s.sendall(struct.pack(">BBHH", 5, mask, x, y))


@needs_kvm
def test_vnc_without_a_display(tmp_path):
    """A host with no display at all: virtio-gpu,vnc= serves the guest's
    screen over RFB on loopback; a key and a pointer move sent by the VNC
    client arrive in the guest; the guest's cursor reaches the client as
    its cursor shape."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    port, sock = free_port(), str(tmp_path / "api.sock")
    run = (DRAW + "kvkit-display events 'kvkit virtio keyboard' 2; echo KEYS-DONE; "
           "kvkit-display events 'kvkit virtio tablet' 2; echo POINTER-DONE; kvkit-display cursor 600 50 & sleep 600")
    p = subprocess.Popen(guest_cmd(run, "--restful-uri", "unix://" + sock,
                                        devices=["virtio-serial,stdio", "virtio-gpu,vnc=127.0.0.1:%d" % port,
                                                 "virtio-input,keyboard", "virtio-input,pointing"]),
                         env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = Lines(p.stdout)
    try:
        out.wait(lambda o: "PATTERN-DRAWN" in o.lines and any(l.startswith("INPUT-READY") for l in o.lines), 180)
        c = Rfb(socket.create_connection(("127.0.0.1", port)))
        assert (c.width, c.height, c.name) == (800, 600, "kvkit")
        deadline = time.monotonic() + 30
        while True:
            img = c.frame()
            ok = all(img.pixel(px, py) == col for px, py, col in PATTERN)
            if ok or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert ok, [(px, py, col, img.pixel(px, py)) for px, py, col in PATTERN]
        c.key(ord("z"))
        out.wait(lambda o: "KEYS-DONE" in o.lines, 60)
        assert events(out, 2) == [(1, 44, 1), (1, 44, 0)], out.lines  # KEY_Z
        # the guest reads the tablet once it has opened it (evdev keeps
        # nothing for a reader that is not there yet)
        out.wait(lambda o: sum(l.startswith("INPUT-READY") for l in o.lines) >= 2, 60)
        c.pointer(799, 599)  # the bottom-right corner (evdev drops values that do not change: not 0)
        out.wait(lambda o: "POINTER-DONE" in o.lines, 60)
        ptr = [tuple(int(v) for v in l.split()[1:]) for l in out.lines if l.startswith("INPUT-EV ")][2:]
        assert dict((code, v) for t, code, v in ptr if t == 3) == {0: 32767, 1: 32767}, ptr
        # the guest's cursor reaches the client as its cursor shape
        out.wait(lambda o: "CURSOR-SET" in o.lines, 60)
        deadline = time.monotonic() + 30
        while not (c.cursor and c.cursor[:2] == (64, 64)) and time.monotonic() < deadline:
            c.frame()
            time.sleep(0.5)
        assert c.cursor and c.cursor[:4] == (64, 64, 0, 0), c.cursor and c.cursor[:4]
        pixel, opaque = c.cursor[4], c.cursor[5]
        assert opaque(5, 5) and pixel(5, 5) == MAGENTA and opaque(31, 31), (pixel(5, 5), opaque(5, 5))
        assert not opaque(40, 40) and not opaque(5, 40)  # the clear part
        Api(unix=sock).post("Stop")
        assert p.wait(timeout=60) == 0
    finally:
        reap(p)
    # nothing is left listening: the port can be listened on again (the
    # closed connection's TIME_WAIT does not count with SO_REUSEADDR)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1)


@needs_kvm
def test_vnc_unix_socket_and_bad_addresses(tmp_path):
    """vnc=unix:PATH: a client gets the server's greeting and the screen's
    size, and the socket goes away with kvkit; a bad address or a port in
    use is one line before anything starts."""
    vs, sock = str(tmp_path / "vnc.sock"), str(tmp_path / "api.sock")
    cmd = guest_cmd("echo UP; sleep 600", "--restful-uri", "unix://" + sock, guest=CLOUD)
    p = subprocess.Popen(cmd + ["--device", "virtio-gpu,width=1024,height=768,vnc=unix:" + vs],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = Lines(p.stdout)
    try:
        out.wait(lambda o: "UP" in o.lines, 120)
        u = socket.socket(socket.AF_UNIX)
        u.connect(vs)
        c = Rfb(u)
        assert (c.width, c.height) == (1024, 768)
        u.close()
        Api(unix=sock).post("HardStop")
        p.wait(timeout=30)
    finally:
        reap(p)
    assert not os.path.exists(vs)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        for opt, want in (("vnc=127.0.0.1:%d" % taken, "vnc: cannot listen on 127.0.0.1:%d" % taken),
                          ("vnc=127.0.0.1", "invalid value for virtio-gpu vnc: 127.0.0.1"),
                          ("vnc=unix:", "invalid value for virtio-gpu vnc: unix:")):
            r = subprocess.run(cmd + ["--device", "virtio-gpu," + opt], capture_output=True, timeout=30)
            assert r.returncode == 1, r.stderr
            assert want in r.stderr.decode().strip().splitlines()[-1], r.stderr
