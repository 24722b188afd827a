"""Pictures the display tests look at, decoded without libraries: PNG
(what GET /vm/screenshot returns) and XWD (what `xwd -root` dumps of the
X display). Each decoder returns an Image with pixel(x, y) -> (r, g, b)."""
import struct
import zlib


class Image:
    def __init__(self, width, height, pixel):
        self.width, self.height, self._pixel = width, height, pixel

    def pixel(self, x, y):
        assert 0 <= x < self.width and 0 <= y < self.height, (x, y, self.width, self.height)
        return self._pixel(x, y)


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def png(data):
    """8-bit RGB or RGBA, not interlaced (what libpng's simplified API writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = hdr
    assert depth == 8 and ctype in (2, 6) and interlace == 0, hdr
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(idat), w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + (0, a, b, (a + b) // 2, _paeth(a, b, c))[f]) & 0xff
        rows.append(line)
        prev = line
    return Image(w, h, lambda x, y: tuple(rows[y][x * bpp:x * bpp + 3]))


def xwd(data):
    """A ZPixmap TrueColor dump at 24 or 32 bits per pixel (Xvfb's)."""
    f = struct.unpack(">25I", data[:100])
    header_size, fmt, depth, w, h = f[0], f[2], f[3], f[4], f[5]
    byte_order, bpp, bpl = f[7], f[11], f[12]
    red_mask, green_mask, blue_mask, ncolors = f[14], f[15], f[16], f[19]
    assert fmt == 2 and bpp in (24, 32), (fmt, bpp, depth)
    pix = data[header_size + ncolors * 12:]
    step = bpp // 8

    def shift(mask):
        return (mask & -mask).bit_length() - 1

    def pixel(x, y):
        b = pix[y * bpl + x * step:y * bpl + x * step + step]
        v = int.from_bytes(b, "little" if byte_order == 0 else "big")
        return tuple((v & m) >> shift(m) for m in (red_mask, green_mask, blue_mask))
    return Image(w, h, pixel)
