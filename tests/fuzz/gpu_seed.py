"""Writes tests/fuzz/corpus/gpu/driver: the control queue of a driver that
sets up a 16x16 screen (create, attach, transfer, scanout, flush, display
info, EDID, cursor), laid out as fuzz_gpu reads its input (the queue bytes
of tests/lib/fake_guest.c's fuzz_queue_start, then guest memory from
0x1000). A seed the fuzzer mutates from a working sequence."""
import os
import struct

img = bytearray(0x9000 - 0x1000)


def put(gpa, b):
    img[gpa - 0x1000:gpa - 0x1000 + len(b)] = b


def hdr(t, flags=0, fence=0):
    return struct.pack("<IIQIB3x", t, flags, fence, 0, 0)


reqs = [
    hdr(0x101) + struct.pack("<IIII", 1, 2, 16, 16),                         # RESOURCE_CREATE_2D
    hdr(0x106) + struct.pack("<II", 1, 1) + struct.pack("<QII", 0x8000, 1024, 0),  # ATTACH_BACKING
    hdr(0x105) + struct.pack("<IIIIQII", 0, 0, 16, 16, 0, 1, 0),             # TRANSFER_TO_HOST_2D
    hdr(0x103) + struct.pack("<IIIIII", 0, 0, 16, 16, 0, 1),                 # SET_SCANOUT
    hdr(0x104, 1, 7) + struct.pack("<IIIIII", 0, 0, 16, 16, 1, 0),           # RESOURCE_FLUSH, fenced
    hdr(0x100),                                                              # GET_DISPLAY_INFO
    hdr(0x10a) + struct.pack("<II", 0, 0),                                   # GET_EDID
    hdr(0x300) + struct.pack("<IIIIIIII", 0, 3, 4, 0, 1, 0, 0, 0),           # UPDATE_CURSOR
]
DESC, AVAIL, USED, N = 0x1000, 0x1100, 0x1200, 16
for k, r in enumerate(reqs):
    rq, rs = 0x2000 + k * 0x80, 0x3000 + k * 0x500
    put(rq, r)
    put(DESC + 32 * k, struct.pack("<QIHH", rq, len(r), 1, 2 * k + 1))     # readable, NEXT
    put(DESC + 32 * k + 16, struct.pack("<QIHH", rs, 0x480, 2, 0))         # writable
    put(AVAIL + 4 + 2 * k, struct.pack("<H", 2 * k))
put(AVAIL, struct.pack("<HH", 0, len(reqs)))
put(0x8000, bytes(range(256)) * 4)
q = bytes([4, 0, (AVAIL - 0x1000) >> 2, (USED - 0x1000) >> 2])
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "gpu", "driver")
with open(out, "wb") as f:
    f.write(q + bytes(img))
