"""What the REST API tests drive kvkit with: an HTTP client over a unix
socket or TCP (the way podman and minikube call it), a collector of the
guest's output lines, and the VMM's resident memory."""
import errno
import http.client
import json
import re
import socket
import threading
import time


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Api:
    def __init__(self, unix=None, port=None):
        self.unix, self.port = unix, port

    def conn(self):
        if self.unix:
            return UnixHTTPConnection(self.unix)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def request(self, method, path, body=None, headers=None):
        c = self.conn()
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read().decode(), r.getheader("Content-Type")
        finally:
            c.close()

    def state(self):
        st, body, _ = self.request("GET", "/vm/state")
        assert st == 200, body
        return json.loads(body)["state"]

    def post(self, state):
        return self.request("POST", "/vm/state", json.dumps({"state": state}))

    def refused(self):
        """True once connecting fails the way clients treat as 'stopped'."""
        try:
            self.request("GET", "/vm/state")
            return False
        except OSError as e:
            # a unix socket file is removed at exit (spec 3.4): ENOENT after that
            return e.errno in (errno.ECONNREFUSED, errno.ENOENT)


class Lines:
    """Collects a process's stdout lines on a thread."""

    def __init__(self, stream):
        self.lines = []
        self.t = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.t.start()

    def _run(self, stream):
        for raw in iter(stream.readline, b""):
            self.lines.append(raw.decode(errors="replace").strip())

    def ticks(self):
        return [int(l.split("-")[1]) for l in self.lines if re.fullmatch(r"TICK-\d+(-[0-9.]+)?", l)]

    def uptimes(self):
        """(tick, guest uptime) pairs from TICK-n-uptime lines."""
        return [(int(m.group(1)), float(m.group(2))) for m in
                (re.fullmatch(r"TICK-(\d+)-([0-9.]+)", l) for l in self.lines) if m]

    def wait(self, pred, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self):
                return
            time.sleep(0.1)
        raise AssertionError("timed out; output so far:\n" + "\n".join(self.lines[-30:]))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int([l for l in f if l.startswith("VmRSS:")][0].split()[1])
