#!/usr/bin/env python3
"""Draws the app icons (a white shield-like ring with a check on blue) as PNGs.

Standard library only (zlib + struct), so that it runs without Pillow. The PNGs are committed
in app/static/icons/; run this again only to change the design:
    python3 app/tools/make-icons.py
"""
import math
import os
import struct
import zlib

BLUE = (11, 79, 138)
WHITE = (255, 255, 255)


def pixel(x, y, n):
    cx = cy = n / 2
    r = math.hypot(x + 0.5 - cx, y + 0.5 - cy) / n
    if 0.30 <= r <= 0.36:
        return WHITE
    # A check mark: two thick segments.
    u, v = (x + 0.5) / n, (y + 0.5) / n
    def near(ax, ay, bx, by):
        dx, dy = bx - ax, by - ay
        t = max(0.0, min(1.0, ((u - ax) * dx + (v - ay) * dy) / (dx * dx + dy * dy)))
        return math.hypot(u - ax - t * dx, v - ay - t * dy) < 0.035
    if near(0.37, 0.50, 0.46, 0.60) or near(0.46, 0.60, 0.65, 0.39):
        return WHITE
    return BLUE


def png(n):
    rows = b''.join(b'\x00' + bytes(c for x in range(n) for c in pixel(x, y, n))
                    for y in range(n))
    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', n, n, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(rows, 9)) + chunk(b'IEND', b''))


if __name__ == '__main__':
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'static', 'icons')
    for size in (192, 512):
        with open(os.path.join(out, f'icon-{size}.png'), 'wb') as f:
            f.write(png(size))
