"""``python -m minideep.classroom new DIR`` and ``python -m minideep.classroom grade SUBMISSIONS``."""
from __future__ import annotations

import argparse
import sys

from .grader import grade
from .workspace import new_workspace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minideep.classroom",
                                     description="Exercises that students fill in and pytest grades.")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="write a student's workspace: stubs and tests, one file each per chapter")
    new.add_argument("folder")
    new.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    marks = commands.add_parser("grade", help="grade a folder of submissions, one sub-folder per student")
    marks.add_argument("submissions")
    marks.add_argument("--csv", help="also write the table to this CSV file")
    marks.add_argument("--timeout", type=float, default=30.0, help="seconds per exercise (default 30)")
    marks.add_argument("--total-timeout", type=float, default=None,
                       help="seconds per student (default: every exercise's limit plus 60)")
    marks.add_argument("--jobs", type=int, default=1, help="students graded at once (default 1)")
    args = parser.parse_args(argv)
    try:
        if args.command == "new":
            written = new_workspace(args.folder, force=args.force)
            print(f"wrote {len(written)} files to {args.folder}; start with `pytest {args.folder}`")
        else:
            grade(args.submissions, args.timeout, args.total_timeout, args.csv, jobs=args.jobs)
    except (FileExistsError, FileNotFoundError, ValueError) as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
