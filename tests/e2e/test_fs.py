"""virtio-fs end to end: a real guest mounts two shares (mount -t virtiofs),
runs the POSIX suite and the escape attempts of tests/guest/fsposix.c, and
swaps files with the host both ways; the host checks what landed on disk."""
import os
import subprocess

import pytest

from conftest import GUEST, KVKIT, KERNEL, ROOT, kvkit_cmd, needs_kvm, said, stream_vm

import sys
sys.path.insert(0, os.path.join(ROOT, "bench", "lib"))
from guest_tools import GUEST_RUN, tools_disk  # noqa: E402

SAN = os.environ.get("KVKIT_E2E_SAN") == "1"
BIG_MIB = int(os.environ.get("KVKIT_E2E_FS_BIG_MIB", 256 if SAN else 2048))

GUEST_SCRIPT = r"""mkdir -p /mnt/a /mnt/b /mnt/c
mount -t virtiofs shareA /mnt/a && echo MOUNT-A-OK
mount -t virtiofs second /mnt/b && echo MOUNT-B-OK
mount -t virtiofs nosuchtag /mnt/c 2>/dev/null || echo MOUNT-UNKNOWN-REFUSED
echo "FROM-HOST $(cat /mnt/a/from-host.txt)"
mkdir /mnt/a/suite && cd /mnt/a/suite && kvkit-fsposix suite /mnt/a/suite; cd /
kvkit-fsposix escape /mnt/a
echo guest-wrote > /mnt/a/from-guest.txt
mkdir -p /mnt/a/gdir/sub && ln -s ../from-guest.txt /mnt/a/gdir/link && ln /mnt/a/from-guest.txt /mnt/a/gdir/hard
echo second-share > /mnt/b/b.txt
mv /mnt/a/rename-me.txt /mnt/a/renamed.txt
mkdir /mnt/a/many && i=0 && while [ $i -lt 3000 ]; do : > /mnt/a/many/f$i; i=$((i+1)); done
echo "MANY $(ls /mnt/a/many | wc -l)"
echo WAIT-LATE
i=0; while [ ! -e /mnt/a/late.txt ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i+1)); done
echo "LATE $(cat /mnt/a/late.txt)"
kvkit-fsposix fill /mnt/a/big %(big)d && echo "BIG-WRITTEN"
echo 3 > /proc/sys/vm/drop_caches
kvkit-fsposix verify /mnt/a/big %(big)d
sync
umount /mnt/a && umount /mnt/b && echo UMOUNT-OK
"""


@pytest.fixture(scope="module")
def shares(tmp_path_factory):
    top = tmp_path_factory.mktemp("fs")
    a, b = top / "a", top / "b"
    a.mkdir()
    b.mkdir()
    secret = top / "secret"
    secret.write_text("HOST-SECRET\n")
    (a / "from-host.txt").write_text("made on the host\n")
    (a / "rename-me.txt").write_text("r\n")
    os.symlink(str(secret), str(a / "abs-link"))
    os.symlink("../secret", str(a / "rel-link"))
    os.mknod(str(a / "host-null"), 0o20666, os.makedev(1, 3))
    secret_before = os.stat(str(secret))
    listing = sorted(os.listdir(str(top)))
    os.environ["PATH"] += ":/usr/sbin:/sbin"
    disk = str(top / "script.img")
    tools_disk(disk, [], GUEST_SCRIPT % {"big": BIG_MIB}, str(top), size="8M")
    cmd = kvkit_cmd("--log-level", "debug", memory=1024, cpus=1, run=GUEST_RUN.replace("/dev/%s", "/dev/vda"),
                    devices=["virtio-serial,stdio", "virtio-blk,path=%s,readonly" % disk,
                             "virtio-fs,sharedDir=%s,mountTag=shareA" % a,
                             "virtio-fs,sharedDir=%s,mountTag=second,cache=never" % b])

    def on_line(text):
        if text == "WAIT-LATE":
            # write then rename: the guest polls for the name and would
            # otherwise catch the file created but still empty
            (a / "late.tmp").write_text("host wrote this while the guest ran\n")
            os.rename(str(a / "late.tmp"), str(a / "late.txt"))
    rc, lines, err = stream_vm(cmd, str(top / "kvkit.err"), on_line)
    return {"rc": rc, "out": lines, "err": err, "a": a, "b": b, "top": top, "secret": secret,
            "secret_before": secret_before, "listing": listing}


@needs_kvm
def test_guest_mounts_both_shares_and_exits_cleanly(shares):
    assert "MOUNT-A-OK" in shares["out"] and "MOUNT-B-OK" in shares["out"]
    assert "MOUNT-UNKNOWN-REFUSED" in shares["out"]
    assert "UMOUNT-OK" in shares["out"]
    assert shares["rc"] == 0, shares["err"][-3000:]


@needs_kvm
def test_posix_suite_passes(shares):
    fails = [l for l in shares["out"] if l.startswith("FSPOSIX FAIL")]
    done = [l for l in shares["out"] if l.startswith("FSPOSIX DONE")]
    assert not fails, fails
    assert len(done) == 2  # suite and escape
    assert int(done[0].split()[2]) >= 55  # the suite ran to its end


@needs_kvm
def test_posix_suite_results_on_the_host(shares):
    suite = shares["a"] / "suite"
    st = os.lstat(str(suite / "f"))
    assert (st.st_uid, st.st_gid) == (1234, 5678)  # chown from the guest
    for name in ("mine/made", "mine/sub"):  # made by guest uid 1234, gid 5678
        st = os.lstat(str(suite / name))
        assert (st.st_uid, st.st_gid) == (1234, 5678), (name, st.st_uid, st.st_gid)
    assert os.readlink(str(suite / "sl")) == "f"
    assert (suite / "d" / "sub" / "x").read_text() == "x"
    assert (suite / "r2").read_text() == "three"  # RENAME_EXCHANGE
    assert (suite / "r3").read_text() == "one"
    assert not (suite / "dev").exists()
    assert os.stat(str(suite / "private")).st_mode & 0o777 == 0o600


@needs_kvm
def test_files_travel_both_ways(shares):
    a = shares["a"]
    assert said(shares, "FROM-HOST") == "made on the host"
    assert said(shares, "LATE") == "host wrote this while the guest ran"
    assert (a / "from-guest.txt").read_text() == "guest-wrote\n"
    assert os.readlink(str(a / "gdir" / "link")) == "../from-guest.txt"
    assert os.stat(str(a / "gdir" / "hard")).st_ino == os.stat(str(a / "from-guest.txt")).st_ino
    assert os.stat(str(a / "from-guest.txt")).st_nlink == 2
    assert (a / "gdir" / "sub").is_dir()
    assert (shares["b"] / "b.txt").read_text() == "second-share\n"
    assert not (a / "rename-me.txt").exists() and (a / "renamed.txt").read_text() == "r\n"


@needs_kvm
def test_thousands_of_files_known_to_the_guest(shares):
    """kvkit holds a descriptor per file the guest knows: 3000 new files
    (more than the usual limit of 1024 open files) all get made."""
    assert said(shares, "MANY") == "3000"
    assert len(os.listdir(str(shares["a"] / "many"))) == 3000


@needs_kvm
def test_large_file_checksum(shares):
    """The guest writes a 2 GiB pseudo-random pattern, reads it back after
    dropping its caches and compares every byte; the host compares the file
    on disk the same way."""
    assert "BIG-WRITTEN" in shares["out"]
    assert said(shares, "VERIFY") == "OK %d MiB" % BIG_MIB
    path = str(shares["a"] / "big")
    assert os.path.getsize(path) == BIG_MIB << 20
    host = subprocess.run([os.path.join(GUEST, "kvkit-fsposix"), "verify", path, str(BIG_MIB)],
                          capture_output=True, text=True)
    assert host.stdout.strip() == "VERIFY OK %d MiB" % BIG_MIB, host


@needs_kvm
def test_escape_attempts_fail_and_nothing_outside_changes(shares):
    escape = [l for l in shares["out"] if l.startswith("FSPOSIX DONE")][1]
    assert escape.split()[3] == "0"
    st = os.stat(str(shares["secret"]))
    b = shares["secret_before"]
    assert (st.st_size, st.st_mtime_ns, st.st_mode, st.st_nlink) == (b.st_size, b.st_mtime_ns, b.st_mode, b.st_nlink)
    assert shares["secret"].read_text() == "HOST-SECRET\n"
    assert sorted(os.listdir(str(shares["top"]))) == sorted(shares["listing"] + ["script.img"])
    # the guest's own symlink is text on the host, never followed here
    assert os.readlink(str(shares["a"] / "moved-link")) == "/init"
    assert not (shares["a"] / "blk").exists() and not (shares["a"] / "hl").exists()


def bad(*devices):
    p = subprocess.run([KVKIT, "--bootloader", "linux,kernel=" + KERNEL] + [x for d in devices for x in ("--device", d)],
                       capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    lines = p.stderr.decode().splitlines()
    assert p.returncode == 1 and len(lines) == 1, (p.returncode, lines)
    return lines[0]


def test_bad_shares_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert bad("virtio-fs,sharedDir=%s/missing" % tmp_path) == \
        "Error: virtio-fs: shared directory %s/missing: No such file or directory" % tmp_path
    assert bad("virtio-fs,sharedDir=%s" % f) == "Error: virtio-fs: shared directory %s is not a directory" % f
    assert bad("virtio-fs,sharedDir=%s,mountTag=t" % tmp_path, "virtio-fs,sharedDir=/tmp,mountTag=t") == \
        "Error: virtio-fs: mount tag 't' is used twice"
    assert bad("virtio-fs,sharedDir=%s,mountTag=%s" % (tmp_path, "x" * 37)) == \
        "Error: invalid virtio-fs mount tag '%s': must be 1 to 36 bytes" % ("x" * 37)
    assert bad("virtio-fs,sharedDir=%s,cache=sometimes" % tmp_path).startswith(
        "Error: unexpected value for virtio-fs 'cache' option: sometimes")
    assert bad("virtio-fs,mountTag=t") == "Error: missing mandatory 'sharedDir' option for virtio-fs device"
