"""Summarise a py-spy ``--format raw`` profile: where the samples are, by function.

``python -m bench.profile_summary PROFILE.txt [-n 25]`` prints the functions with the most
samples *inclusive* (the function or anything it called) and *self* (the innermost frame),
as a share of all samples of the process. py-spy's flame graphs need a browser; this is what
goes into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def frame_name(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":", 1)[0] if where else ""
    return f"{name} ({module})" if module else name


def summarise(path: Path, top: int) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";")]
        total += count
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("-n", type=int, default=25)
    args = parser.parse_args()
    print(summarise(args.profile, args.n))


if __name__ == "__main__":
    main()
