"""`posenet data convert FORMAT SOURCE OUT.h5`: one command per public dataset archive.

Each format module exposes a `Converter(archive, args)` with `source` (the file's
`source` attribute), `items()` (the work units: images or frames, in a stable order),
`convert(item)` (a list of records, one per sample, each a dict of the HDF5 fields) and
`attrs()` (extra file attributes). A converter raises `Skip(reason)` for an item it
cannot use; the driver counts the reasons and prints them in the closing summary, or
stops with one clear error under `--strict`. Unsafe member names (absolute, `..`), folder
entries that are not regular files, members over `--max-member-mb`, images over
`--max-megapixels` and records whose labels break the dataset's rules (non-finite, zero
quaternion, inverted face box: `h5format.label_problems`) are counted the same way. The output is written atomically: it appears
complete or not at all.
"""

from __future__ import annotations

import argparse
import importlib
from collections import Counter
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from data_tools.convert.archive import IRREGULAR_REASON, MAX_MEGAPIXELS, MAX_MEMBER_MB, Archive, Skip, open_archive
from posenet.core.errors import PosenetError
from posenet.core.fileio import check_writable
from posenet.core.h5format import label_problems, write_dataset
from posenet.core.values import check_positive, check_seed

FORMATS = {
    "aflw2000": "data_tools.convert.aflw2000",
    "300wlp": "data_tools.convert.w300lp",
    "biwi": "data_tools.convert.biwi",
    "widerface": "data_tools.convert.widerface",
    "images": "data_tools.convert.images",
}
UNSAFE_REASON = "unsafe member path (absolute or '..')"

Record = dict[str, object]


class Converter(Protocol):
    source: str

    def items(self) -> list[str]: ...

    def convert(self, item: str) -> list[Record]: ...

    def attrs(self) -> dict[str, object]: ...


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=sorted(FORMATS), help="dataset layout of SOURCE")
    parser.add_argument("source", type=Path, help="the official .zip archive or its unpacked folder")
    parser.add_argument("out", type=Path, help="output HDF5 file")
    parser.add_argument("-n", "--limit", type=int, default=None, metavar="N",
                        help="stop after N written samples (quick looks, tests)")
    parser.add_argument("--strict", action="store_true",
                        help="fail on the first bad item instead of skipping and counting it")
    parser.add_argument("--seed", type=int, default=0, help="random crops and split (widerface)")
    parser.add_argument("--max-member-mb", type=float, default=MAX_MEMBER_MB,
                        help="skip (and count) archive members larger than this")
    parser.add_argument("--max-megapixels", type=float, default=MAX_MEGAPIXELS,
                        help="skip (and count) images whose header declares more pixels, before decoding them")


def stack(records: list[Record]) -> dict[str, object]:
    """Records (dicts of per-sample values) -> fields (N-row arrays; images stay a list)."""
    names = records[0].keys()
    return {name: [r[name] for r in records] if name == "images" else np.stack([r[name] for r in records])
            for name in names}


def convert_all(converter: Converter, archive: Archive, limit: int | None,
                strict: bool) -> tuple[list[Record], Counter]:
    """Run the converter over its items; returns the records and the skip reasons."""
    skipped: Counter = Counter()
    for reason, names in ((UNSAFE_REASON, archive.unsafe), (IRREGULAR_REASON, archive.irregular)):
        for name in names:
            if strict:
                raise PosenetError(f"{archive.path}: {name}: {reason}")
            skipped[reason] += 1
    records: list[Record] = []
    for item in tqdm(converter.items(), desc=f"convert {converter.source}", unit="item"):
        try:
            records += [checked(record) for record in converter.convert(item)]
        except Skip as reason:
            if strict:
                raise PosenetError(f"{archive.path}: {item}: {reason}") from None
            skipped[str(reason)] += 1
        if limit is not None and len(records) >= limit:
            return records[:limit], skipped
    return records, skipped


def checked(record: Record) -> Record:
    """The record, or `Skip` when its labels break a dataset rule (non-finite values, a zero
    quaternion, an inverted face box): such a sample is counted, never written."""
    fields = {name: np.asarray(value)[None] for name, value in record.items() if name != "images"}
    problems = label_problems(fields)
    if problems:
        raise Skip(problems[0][0].replace("field ", "label "))
    return record


def summary(out: Path, count: int, skipped: Counter) -> str:
    reasons = ", ".join(f"{n} {reason}" for reason, n in skipped.most_common())
    return f"wrote {count} samples to {out}; skipped {sum(skipped.values())}" + (f" ({reasons})" if reasons else "")


def run(args: argparse.Namespace) -> None:
    check_seed(args.seed)
    check_positive(args.max_member_mb, "--max-member-mb")
    check_positive(args.max_megapixels, "--max-megapixels")
    check_writable(args.out, inputs=(args.source,))
    module = importlib.import_module(FORMATS[args.format])
    with open_archive(args.source) as archive:
        archive.max_member_bytes = int(args.max_member_mb * 2**20)
        archive.max_pixels = int(args.max_megapixels * 10**6)
        converter = module.Converter(archive, args)
        records, skipped = convert_all(converter, archive, args.limit, args.strict)
    if not records:
        raise PosenetError(f"{args.source}: no usable {args.format} samples ({summary(args.out, 0, skipped)})")
    attrs = {"source": converter.source, "created_by": f"posenet data convert {args.format}", **converter.attrs()}
    write_dataset(args.out, stack(records), attrs)
    print(summary(args.out, len(records), skipped))
