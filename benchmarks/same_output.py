"""Fingerprints of what the codec makes: for each image of some folders and each quality, the
file's size and md5 and the md5 of its decoded pixels. Run it on two commits and `diff` the
outputs to check that a change keeps the files and images byte for byte.

    python benchmarks/same_output.py ../shared/corpus/valid evalsets/packages > fingerprints.txt
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    from vqpress.codec.api import Codec
    from vqpress.codec.imageio import image_paths, open_image

    codec = Codec(device="cpu", threads=args.threads)
    for folder in args.folders:
        for path in image_paths(folder):
            image = open_image(path)
            for q in codec.qualities:
                data = codec.compress(image, q)
                pixels = np.asarray(codec.decompress(data))
                print(f"{path.parent.name}/{path.name} q{q} {len(data)} {hashlib.md5(data).hexdigest()} "
                      f"{hashlib.md5(pixels.tobytes()).hexdigest()}", flush=True)


if __name__ == "__main__":
    main()
