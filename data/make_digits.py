"""Make `data/digits.npz` from scikit-learn's copy of the UCI "Optical Recognition of
Handwritten Digits" data (1,797 8x8 images, 0..16 grey levels, labels 0..9), without
installing scikit-learn: the CSV ships inside the wheel.

    python -m pip download --no-deps --only-binary=:all: -d /tmp/skl scikit-learn==1.7.2
    python data/make_digits.py /tmp/skl/scikit_learn-1.7.2-*.whl data/digits.npz

Kept in the repository (about 30 KB) so tests and the quantization table run offline.
scikit-learn is BSD-3-Clause; the data set is by E. Alpaydin and C. Kaynak, UCI Machine
Learning Repository, CC BY 4.0 (https://doi.org/10.24432/C50P49).
"""

import gzip
import io
import sys
import zipfile

import numpy as np


def main(wheel, out):
    with zipfile.ZipFile(wheel) as z:
        raw = gzip.decompress(z.read("sklearn/datasets/data/digits.csv.gz"))
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.float64)
    images = table[:, :-1].astype(np.uint8)
    labels = table[:, -1].astype(np.uint8)
    assert images.shape == (1797, 64) and int(images.max()) == 16 and sorted(set(labels)) == list(range(10))
    np.savez_compressed(out, images=images, labels=labels)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
