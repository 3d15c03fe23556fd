"""``python -m minideep.data``: see which data sets this machine has, and fetch them ahead of class.

    python -m minideep.data                      # where each data set is found (no downloads)
    python -m minideep.data fetch cifar10 mnist  # download + verify (+ resize Food-101) now
    python -m minideep.data fetch cifar100 --data-dir /srv/data   # into a shared folder
"""
from __future__ import annotations

import argparse
import sys

from .errors import DataError
from .load import DATASETS, load_dataset
from .locate import search_roots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minideep.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="where", choices=["where", "fetch"])
    parser.add_argument("names", nargs="*", help=f"data sets (default: all of {', '.join(DATASETS)})")
    parser.add_argument("--data-dir", help="folder to look in first and to download into")
    args = parser.parse_args(argv)
    names = args.names or [n for n in DATASETS if args.command == "where" or n != "food101"]
    print("search order: " + "; ".join(f"{root} ({label})" for root, label in search_roots(args.data_dir)))
    failed = 0
    for name in names:
        try:
            for split in ("train", "test"):
                ds = load_dataset(name, split, data_dir=args.data_dir, download=args.command == "fetch")
                print(f"{name:>13} {split:<5}: {len(ds):>6} images {'x'.join(map(str, ds.images.shape[1:]))}  <- {ds.source}")
        except DataError as err:
            failed += 1
            print(f"{name:>13}: not available ({str(err).splitlines()[0]})")
    return 1 if failed and args.command == "fetch" else 0


if __name__ == "__main__":
    sys.exit(main())
