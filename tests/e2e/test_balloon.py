"""virtio-balloon end to end: the REST API sets the target, the guest
gives memory back and kvkit's own memory shrinks; deflating returns it."""
import json
import subprocess
import time

from conftest import kvkit_cmd, needs_kvm
from rest_client import Api, Lines, rss_kib


@needs_kvm
def test_balloon_inflate_shrinks_guest_and_kvkit(tmp_path):
    sock = str(tmp_path / "api.sock")
    run = ("dd if=/dev/zero of=/tmp/fill bs=1M count=600 2>/dev/null; rm /tmp/fill; echo FILLED; "
           "while true; do grep MemTotal /proc/meminfo | tr -s ' ' | sed s/^/MEM-/; sleep 0.5; done")
    p = subprocess.Popen(kvkit_cmd("--restful-uri", "unix://" + sock, memory=1024, run=run,
                                   devices=["virtio-serial,stdio", "virtio-balloon"]),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = Lines(p.stdout)
    try:
        api = Api(unix=sock)
        out.wait(lambda o: any(l.startswith("MEM-") for l in o.lines))

        def memtotal():
            return int([l for l in out.lines if l.startswith("MEM-")][-1].split()[1])

        before_kib, rss_before = memtotal(), rss_kib(p.pid)
        assert rss_before > 500 * 1024, rss_before  # the guest touched its memory
        st, body, _ = api.request("POST", "/vm/balloon", json.dumps({"targetBytes": 768 << 20}))
        assert st == 202, body
        out.wait(lambda o: memtotal() <= before_kib - 250 * 1024, timeout=60)
        deadline = time.monotonic() + 30
        while rss_kib(p.pid) > rss_before - 200 * 1024 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert rss_kib(p.pid) <= rss_before - 200 * 1024, (rss_before, rss_kib(p.pid))
        st, body, _ = api.request("GET", "/vm/balloon")
        info = json.loads(body)
        assert st == 200 and info["targetBytes"] == 768 << 20 and info["memoryBytes"] == 1024 << 20
        assert info["actualBytes"] <= (768 << 20) + (8 << 20), info
        assert "freeMemory" in info["stats"] and "totalMemory" in info["stats"], info
        # deflate: the guest gets its memory back
        st, _, _ = api.request("POST", "/vm/balloon", json.dumps({"targetBytes": 1024 << 20}))
        assert st == 202
        out.wait(lambda o: memtotal() >= before_kib - 4 * 1024, timeout=60)
        st, _, _ = api.request("POST", "/vm/balloon", json.dumps({"targetBytes": 4096 << 20}))
        assert st == 400  # more than the VM has
        api.post("HardStop")
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
