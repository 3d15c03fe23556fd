"""Build minideep's bundled offline set from the official Fashion-MNIST files.

    python scripts/make_bundled.py            # write minideep/data/bundled/*
    python scripts/make_bundled.py --check    # rebuild in memory, compare with the shipped file

The set is a balanced subset: 600 training images per class (6,000) and 100 test images
per class (1,000), drawn without replacement with ``numpy.random.default_rng(SEED)`` by
``Dataset.balanced_indices`` from the official training and test files, kept in their
original order. The official files are found like any data set (``--data-dir``,
``$MINIDEEP_DATA``, the cache, Debian's ``/usr/share/datasets/fashion-mnist``) and verified
by MD5 before use.

The ``.npz`` is written byte for byte reproducibly: fixed zip timestamps, fixed member
order, deflate level 9. Its SHA-256 goes to ``bundled.json``, which the loader checks.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile

import numpy as np

from minideep.data import load_dataset
from minideep.data.bundled import BUNDLED_DIR, BUNDLED_FILE, BUNDLED_INFO
from minideep.data.sources import SOURCES

SEED = 0
PER_CLASS = {"train": 600, "test": 100}
LICENSE_FILE = BUNDLED_DIR / "LICENSE-fashion-mnist.txt"

LICENSE_TEXT = """\
The file fashion_mnist_subset.npz in this folder is a subset of Fashion-MNIST
(6,000 training and 1,000 test images, 600 / 100 per class), made by
scripts/make_bundled.py from the official release:
  https://github.com/zalandoresearch/fashion-mnist
  Han Xiao, Kashif Rasul, Roland Vollgraf. Fashion-MNIST: a Novel Image Dataset for
  Benchmarking Machine Learning Algorithms. arXiv:1708.07747, 2017.
Fashion-MNIST is distributed under the MIT License, reproduced below.

The MIT License (MIT)

Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def build_arrays(data_dir: str | None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays of the bundled set, and where the official files were found."""
    arrays: dict[str, np.ndarray] = {}
    found = {}
    for split, per_class in PER_CLASS.items():
        full = load_dataset("fashion-mnist", split, data_dir=data_dir)
        idx = np.sort(full.balanced_indices(per_class * len(full.classes), SEED))
        arrays[f"{split}_images"] = np.ascontiguousarray(full.images[idx])  # uint8 (n, 1, 28, 28)
        arrays[f"{split}_labels"] = full.labels[idx].astype(np.uint8)
        arrays[f"{split}_indices"] = idx.astype(np.int32)  # position in the official file
        found[split] = full.source
    return arrays, found


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``np.load``-able .npz whose bytes depend only on the arrays (no timestamps)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, arrays[name], allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compresslevel=9)
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="folder holding the official Fashion-MNIST .gz files")
    parser.add_argument("--check", action="store_true", help="compare with the shipped file instead of writing")
    args = parser.parse_args()

    arrays, found = build_arrays(args.data_dir)
    data = npz_bytes(arrays)
    sha256 = hashlib.sha256(data).hexdigest()
    if args.check:
        with np.load(BUNDLED_FILE, allow_pickle=False) as shipped:
            same = sorted(shipped.files) == sorted(f"{k}" for k in arrays) and all(
                np.array_equal(shipped[k], v) for k, v in arrays.items()
            )
        print(f"arrays {'identical' if same else 'DIFFER'}; sha256 {sha256} (shipped: {json.loads(BUNDLED_INFO.read_text())['sha256']})")
        return 0 if same else 1

    BUNDLED_DIR.mkdir(parents=True, exist_ok=True)
    BUNDLED_FILE.write_bytes(data)
    LICENSE_FILE.write_text(LICENSE_TEXT)
    info = {
        "file": BUNDLED_FILE.name,
        "sha256": sha256,
        "bytes": len(data),
        "dataset": "Fashion-MNIST (Zalando SE, MIT License)",
        "licence_file": LICENSE_FILE.name,
        "seed": SEED,
        "per_class": PER_CLASS,
        "counts": {s: int(len(arrays[f"{s}_labels"])) for s in PER_CLASS},
        "arrays": {k: f"{v.dtype} {tuple(v.shape)}" for k, v in sorted(arrays.items())},
        "official_files_md5": {k: v.md5 for k, v in SOURCES["fashion-mnist"].items()},
        "official_content_md5": {k: v.payload_md5 for k, v in SOURCES["fashion-mnist"].items()},
        "generated_by": "scripts/make_bundled.py",
    }
    BUNDLED_INFO.write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {BUNDLED_FILE} ({len(data) / 1e6:.2f} MB, sha256 {sha256})")
    for split, where in found.items():
        print(f"  {split} from {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
