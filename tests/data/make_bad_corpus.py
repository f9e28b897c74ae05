"""Writes tests/data/bad/: small files that real image lists contain by accident.

Run from anywhere: python tests/data/make_bad_corpus.py. The expected outcome of each file is
in tests/test_long_runs.py (CORPUS); the files are committed so they can be inspected.
"""
import os
import struct
import zlib

import cv2
import numpy as np
from PIL import Image

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad")


def photo(h=96, w=128):
    r, c = np.mgrid[0:h, 0:w]
    return np.stack([r * 2 % 256, c * 2 % 256, (r + c) % 256], -1).astype(np.uint8)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def main():
    os.makedirs(HERE, exist_ok=True)
    out = lambda name: os.path.join(HERE, name)  # noqa: E731
    open(out("zero_bytes.jpg"), "wb").close()
    jpeg = cv2.imencode(".jpg", photo(), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    with open(out("truncated.jpg"), "wb") as f:
        f.write(jpeg[: len(jpeg) * 6 // 10])
    with open(out("text_file.jpg"), "w") as f:
        f.write("this is a text file with an image's name\n")
    Image.fromarray(photo()[..., ::-1].copy()).convert("CMYK").save(out("cmyk.jpg"), quality=90)
    cv2.imwrite(out("sixteen_bit.png"), photo().astype(np.uint16) * 257)
    cv2.imwrite(out("rgba.png"), np.dstack([photo(), np.full(photo().shape[:2], 128, np.uint8)]))
    cv2.imwrite(out("greyscale.png"), photo()[..., 0])
    cv2.imwrite(out("one_pixel.png"), np.array([[[10, 200, 30]]], np.uint8))
    # 20000 x 20000 RGB (400 megapixels) in a header, one compressed row of data
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * (1 + 3 * 20000), 9)
    with open(out("decompression_bomb.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
                + png_chunk(b"IEND", b""))
    os.makedirs(out("directory.jpg"), exist_ok=True)
    open(os.path.join(out("directory.jpg"), ".keep"), "w").close()
    cv2.imencode(".jpg", photo())[1].tofile(out("name with spaces ünïcödé.jpg"))


if __name__ == "__main__":
    main()
