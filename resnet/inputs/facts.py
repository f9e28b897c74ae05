"""What is known about inputs without decoding one: which file names are images, and how many
crops multi-crop takes. Kept apart from imaging so that listing images (lists, remote) and
planning a run (runners) never load OpenCV, and so remote and imaging need not import each
other.
"""
from __future__ import annotations

import os

#: v1's multi-crop: 4 corners and the centre, then the same 5 mirrored
CROPS = 10
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
                    ".pbm", ".jp2")


def crops_per_image(multi_crop: bool) -> int:
    return CROPS if multi_crop else 1


def is_image_name(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS
