#!/usr/bin/python3
"""bench/net: TCP throughput between the guest and the host, in one run:
kvkit's nat vs QEMU's -netdev user (both user-mode NAT stacks, libslirp in
both; the host iperf3 server on 127.0.0.1, which the guest reaches as
10.0.2.2), kvkit's tap vs QEMU's tap without vhost (the same tap device,
the server on its host address), the same on a multiqueue tap (a queue
pair per vCPU in both; two iperf3 clients, one pinned to each guest CPU,
so their flows take both pairs), and kvkit type=unixstream vs QEMU
-netdev stream, each on its own passt (the server on 127.0.0.1, which
passt maps to the guest's gateway). The whole run is in a network namespace
of its own (an uplink tap gives passt its addresses). Guest to host and host to guest (-R), Gbit/s, and the
VMM's host CPU seconds per GB moved. iperf3 runs in the guest from a
read-only tools disk. BENCH_RUNTIME seconds per direction (default 5)."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from guest_tools import GUEST_RUN, cpu_seconds, tools_disk  # noqa: E402
from report import publish, table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KVKIT = os.path.join(ROOT, "build", "kvkit")
KERNEL = os.path.join(ROOT, "build", "guest", "vmlinuz")
INITRD = os.path.join(ROOT, "build", "guest", "initrd.img")
RUNTIME = int(os.environ.get("BENCH_RUNTIME", "5"))
WORK = os.environ.get("BENCH_DIR", "/var/tmp")
CPUS, MEM, PORT = 2, 1024, 5201
JOBS = [("guest-to-host", ""), ("host-to-guest", "-R")]


TAP, TAP_HOST, TAP_GUEST = "kvbench0", "10.10.0.1", "10.10.0.2"
MQTAP, MQTAP_HOST, MQTAP_GUEST = "kvbenchmq0", "10.11.0.1", "10.11.0.2"
UPLINK, UPLINK_ADDR, UPLINK_GW = "kvup0", "10.88.0.2", "10.88.0.1"
NETS = tuple(x for x in os.environ.get("BENCH_NETS", "nat,tap,tap-mq,passt").split(",") if x)
STREAMS = {"tap-mq": 2}  # iperf3 clients at once (one per guest CPU), 1 elsewhere


def guest_script():
    # the kernel command line says which network: net=nat or net=tap
    s = ('if [ "$net" = tap ]; then ip addr add %s/24 dev eth0; ip link set eth0 up; SRV=%s; sleep 1; '
         'elif [ "$net" = tap-mq ]; then ip addr add %s/24 dev eth0; ip link set eth0 up; SRV=%s; sleep 1; '
         'elif [ "$net" = passt ]; then udhcpc -i eth0 -n -q -t 10 -T 1 >/dev/null 2>&1; SRV=%s; '
         'else udhcpc -i eth0 -n -q -t 10 -T 1 >/dev/null 2>&1; SRV=10.0.2.2; fi\n'
         % (TAP_GUEST, TAP_HOST, MQTAP_GUEST, MQTAP_HOST, UPLINK_GW))
    for name, flag in JOBS:
        # tap-mq: a client per guest CPU, each to its own server port; the
        # results go to files first so the two JSON texts do not mix
        s += ('echo JOB-START %s; if [ "$net" = tap-mq ]; then '
              'taskset 1 chroot /t iperf3 -c $SRV -p %d -t %d -i 0 -J %s > /tmp/a & '
              'taskset 2 chroot /t iperf3 -c $SRV -p %d -t %d -i 0 -J %s > /tmp/b; wait; '
              "tr -d '\\n' < /tmp/a; echo; tr -d '\\n' < /tmp/b; echo; "
              "else chroot /t iperf3 -c $SRV -p %d -t %d -i 0 -J %s | tr -d '\\n'; echo; fi; echo JOB-END\n"
              % (name, PORT, RUNTIME, flag, PORT + 1, RUNTIME, flag, PORT, RUNTIME, flag))
    return s


def run_vmm(name, cmd, bind="127.0.0.1", streams=1):
    out = {}
    # one server per client for the whole run, listening before the guest
    # can connect
    srvs = [subprocess.Popen(["iperf3", "-s", "-B", bind, "-p", str(PORT + i)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(streams)]
    time.sleep(0.5)
    parts = []
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    start, job = 0, None
    deadline = time.monotonic() + 300
    for raw in p.stdout:
        line = raw.decode(errors="replace").strip()
        m = re.search(r"JOB-START (\S+)", line)
        if m:
            job, start, parts = m.group(1), cpu_seconds(p.pid), []
            continue
        if line.startswith("{") and job:
            try:
                js = json.loads(line[line.index("{"):line.rindex("}") + 1])
            except ValueError:  # the console cut or mixed the line: that job has no figure
                print("%s: %s: unreadable iperf3 line: %.120s" % (name, job, line), file=sys.stderr)
                job = None
                continue
            if "error" in js:
                sys.exit("%s: iperf3 in the guest: %s" % (name, js["error"]))
            parts.append(js["end"]["sum_received"])
            if len(parts) < streams:
                continue
            moved = sum(x["bytes"] for x in parts)
            bps = sum(x["bits_per_second"] for x in parts)
            out[job] = (bps / 1e9, moved, cpu_seconds(p.pid) - start)
            job = None
        if len(out) == len(JOBS) or time.monotonic() > deadline:
            break
    p.kill()
    p.wait()
    for srv in srvs:
        srv.kill()
        srv.wait()
    if len(out) != len(JOBS):  # the table says n/a; the other pairings still run
        print("%s: only %d of %d jobs reported; stderr:\n%s" % (name, len(out), len(JOBS),
                                                               p.stderr.read().decode()[-2000:]), file=sys.stderr)
    return out


def start_passt(sockdir, name):
    """A passt of its own for one VMM; returns (process, socket path)."""
    sock = os.path.join(sockdir, name + ".sock")
    p = subprocess.Popen(["passt", "-f", "-q", "-s", sock], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    for _ in range(100):
        if os.path.exists(sock):
            return p, sock
        time.sleep(0.1)
    sys.exit("passt did not create %s" % sock)


def own_netns():
    """Re-run in a network namespace of our own: the tap, the uplink passt
    copies its addresses from, and the servers stay out of the host's."""
    if os.environ.get("BENCH_NET_NETNS") != "1":
        os.execvpe("unshare", ["unshare", "-n", sys.executable] + sys.argv, dict(os.environ, BENCH_NET_NETNS="1"))
    for c in ("ip link set lo up", "ip tuntap add dev %s mode tap" % UPLINK,
              "ip addr add %s/24 dev %s" % (UPLINK_ADDR, UPLINK), "ip link set %s up" % UPLINK,
              "ip route add default via %s dev %s onlink" % (UPLINK_GW, UPLINK),
              "ip tuntap add dev %s mode tap" % TAP, "ip addr add %s/24 dev %s" % (TAP_HOST, TAP),
              "ip link set %s up" % TAP, "ip tuntap add dev %s mode tap multi_queue" % MQTAP,
              "ip addr add %s/24 dev %s" % (MQTAP_HOST, MQTAP), "ip link set %s up" % MQTAP):
        subprocess.run(c.split(), check=True)


PAIRINGS = {"nat": "nat vs `-netdev user`", "tap": "tap vs tap (no vhost)",
            "tap-mq": "multiqueue tap vs tap `queues=2` (no vhost)", "passt": "unixstream vs `-netdev stream` (passt)"}


def row(net, job, k, q):
    """A table row for one pairing and direction (k, q: kvkit's and QEMU's
    (Gbit/s, bytes, CPU s), or None when that VMM did not report it)."""
    if not k or not q:
        return [PAIRINGS[net], job, "n/a", "n/a", "", ""]
    return [PAIRINGS[net], job, "%.3f Gbit/s" % k[0], "%.3f Gbit/s" % q[0], "%.2f" % (k[0] / q[0]),
            "%.1f, %.1f" % (k[2] / (k[1] / 1e9), q[2] / (q[1] / 1e9))]


def main():
    own_netns()
    rows = []
    tools = os.path.join(WORK, "kvkit-bench-net-tools.img")
    tools_disk(tools, ["iperf3"], guest_script(), WORK)
    print("bench/net: iperf3 TCP, %d s per direction, guest %d vCPU %d MiB; nat vs QEMU user-mode, tap vs QEMU tap "
          "(no vhost), unixstream vs QEMU -netdev stream (each on its own passt)" % (RUNTIME, CPUS, MEM), flush=True)
    # passt runs as nobody: its sockets need a directory nobody may write
    sockdir = tempfile.mkdtemp(prefix="kvkit-bench-passt-")
    os.chmod(sockdir, 0o777)
    try:
        for net in NETS:
            cmdline = 'console=ttyS0 quiet hvcwait=0 net=%s run="%s"' % (net, GUEST_RUN % "vda")
            bind = {"tap": TAP_HOST, "tap-mq": MQTAP_HOST}.get(net, "127.0.0.1")
            streams = STREAMS.get(net, 1)
            q_nic = "virtio-net-pci,netdev=n0"
            passts = []
            if net == "passt":
                pk, kv_sock = start_passt(sockdir, "kvkit")
                pq, q_sock = start_passt(sockdir, "qemu")
                passts = [pk, pq]
                kv_net = "virtio-net,type=unixstream,path=" + kv_sock
                q_net = "stream,id=n0,server=off,addr.type=unix,addr.path=" + q_sock
            elif net == "nat":
                kv_net, q_net = "virtio-net,nat,hostLoopback", "user,id=n0"
            elif net == "tap-mq":  # kvkit gives a multiqueue tap a pair per vCPU
                kv_net = "virtio-net,tap=" + MQTAP
                q_net = "tap,id=n0,ifname=%s,script=no,downscript=no,vhost=off,queues=%d" % (MQTAP, CPUS)
                q_nic += ",mq=on,vectors=%d" % (2 * CPUS + 2)
            else:
                kv_net = "virtio-net,tap=" + TAP
                q_net = "tap,id=n0,ifname=%s,script=no,downscript=no,vhost=off" % TAP
            res = {}
            res["kvkit"] = run_vmm("kvkit", [KVKIT, "--cpus", str(CPUS), "--memory", str(MEM), "--bootloader",
                                             "linux,kernel=%s,initrd=%s,cmdline=%s" % (KERNEL, INITRD, cmdline),
                                             "--device", "virtio-serial,stdio",
                                             "--device", "virtio-blk,path=%s,readonly" % tools, "--device", kv_net],
                                   bind, streams)
            res["qemu"] = run_vmm("qemu", ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-M", "q35", "-smp",
                                           str(CPUS), "-m", str(MEM), "-nographic", "-nodefaults", "-no-reboot",
                                           "-serial", "stdio", "-kernel", KERNEL, "-initrd", INITRD, "-append", cmdline,
                                           "-drive", "file=%s,if=none,id=t,format=raw,readonly=on" % tools,
                                           "-device", "virtio-blk-pci,drive=t",
                                           "-netdev", q_net, "-device", q_nic], bind, streams)
            for p in passts:
                p.kill()
                p.wait()
            print("%s: %-14s %12s %12s %9s   %s" % (net, "direction", "kvkit", "qemu", "kv/qemu",
                                                  "VMM CPU s/GB kvkit qemu"))
            for j, _ in JOBS:
                rows.append(row(net, j.replace("-to-", "→"), res["kvkit"].get(j), res["qemu"].get(j)))
                if j not in res["kvkit"] or j not in res["qemu"]:
                    print("%s: %-14s n/a (a VMM did not report it)" % (net, j), flush=True)
                    continue
                k, q = res["kvkit"][j], res["qemu"][j]
                print("%s: %-14s %8.3f Gb/s %8.3f Gb/s %9.2f   %.2f %.2f" % (
                    net, j, k[0], q[0], k[0] / q[0], k[2] / (k[1] / 1e9), q[2] / (q[1] / 1e9)), flush=True)
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)
    os.unlink(tools)
    publish("net", "iperf3 TCP, %d vCPU, %d MiB, %d s each way; two clients pinned to the two guest CPUs on the "
            "multiqueue tap" % (CPUS, MEM, RUNTIME),
            table(["pairing", "direction", "kvkit", "QEMU", "kvkit/QEMU", "VMM CPU s/GB kvkit, QEMU"], rows))


if __name__ == "__main__":
    main()
