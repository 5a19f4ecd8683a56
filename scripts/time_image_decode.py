"""Time the released protocol's CPU side: one person's heatmaps upsampled into the image and the argmax there
(:func:`mca.protocol.image_argmax`), at one scale and with the paper's six-scale pyramid.

    python scripts/time_image_decode.py

The person is valid.h5's first (a 1179.6 px crop in a 1920x1080 image: one of the largest in MPII); random
16-channel 64x64 maps; OpenCV on one thread.  Prints ms per person and the projection for valid.h5's 2958 people.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="timed calls per setting (after one warm-up)")
    args = p.parse_args()

    from mca import heatmaps as H
    from mca.data.augment import make_sample
    from mca.protocol import PAPER_SCALES, _scaled_box, image_argmax

    cv2.setNumThreads(1)
    half = 1179.6 / 1.25 / 2  # the box make_sample pads by 1.25 to the released 200 x 5.898 px crop
    box = np.array([965 - half, 409.78 - half, 965 + half, 409.78 + half])
    image = np.zeros((1080, 1920, 3), np.uint8)
    s2h = H.scale_matrix((256, 256), (64, 64))
    rng = np.random.default_rng(0)
    for scales in ((1.0,), PAPER_SCALES):
        mats = np.stack([H.compose_affine(s2h, make_sample(image, np.zeros((16, 2)), np.zeros(16, bool),
                                                           _scaled_box(box, f), 256, 64, tuple(range(16))).frame_to_input)
                         for f in scales])
        maps = rng.random((len(scales), 16, 64, 64)).astype(np.float32)
        image_argmax(maps, mats, (1920, 1080))
        t = time.perf_counter()
        for _ in range(args.repeats):
            image_argmax(maps, mats, (1920, 1080))
        ms = (time.perf_counter() - t) / args.repeats * 1e3
        print(f"{len(scales)} scale(s): {ms:.0f} ms per person; valid.h5 (2958 people): {2958 * ms / 60e3:.0f} min "
              f"on one core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
