"""Subcommands `textseld download-dataset` and `textseld check-data`."""

from __future__ import annotations

import argparse

from textseld.commands import add_command
from textseld.data.download import DEFAULT_API_URL, DEFAULT_FILES, DEFAULT_RECORD


def register(sub) -> None:
    """Add this stage's subcommands to the `textseld` parser."""
    p = add_command(
        sub,
        "download-dataset",
        help="download, verify (size, MD5) and extract Zenodo record files",
        description="Download the DCASE2025 Stereo SELD data from Zenodo: resumable, verified "
        "against the records API's size and MD5, extracted safely; OUT/manifest.json records it.",
    )
    p.add_argument("--out", required=True, help="dataset root to download and extract into")
    p.add_argument("--record", default=DEFAULT_RECORD, help="Zenodo record id")
    p.add_argument(
        "--files",
        nargs="+",
        default=list(DEFAULT_FILES),
        metavar="NAME",
        help="files of the record to fetch",
    )
    p.add_argument("--api-url", default=DEFAULT_API_URL, help="records API base URL")
    p.add_argument("--retries", type=int, default=5, help="retries per file after failures")
    p.add_argument("--no-extract", action="store_true", help="download and verify only")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_download)

    p = add_command(
        sub,
        "check-data",
        help="validate a dataset folder (audio format, label CSVs, pairing); lists every problem",
        description="Check ROOT/stereo_dev/<split>/*.wav and ROOT/metadata_dev/<split>/*.csv: "
        "2 channels, 24 kHz, 120000 samples, strict reference CSVs, files paired by name. "
        "Exits 1 when any problem is found.",
    )
    p.add_argument("root", metavar="DIR", help="dataset root (holding stereo_dev/ and metadata_dev/)")
    p.add_argument("--splits", nargs="+", metavar="SPLIT", help="split folders to check (default: every one present)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_check_data)


def _download(args: argparse.Namespace) -> int:
    from textseld.data.download import download_record

    if args.retries < 0:
        raise ValueError(f"--retries must be >= 0, got {args.retries}")
    manifest = download_record(
        out=args.out,
        record=args.record,
        files=args.files,
        api_url=args.api_url,
        retries=args.retries,
        progress=not args.no_progress,
        extract=not args.no_extract,
    )
    for entry in manifest["files"]:
        state = "extracted" if entry.get("extracted") else "downloaded"
        print(f"{entry['file']}: {entry['size']} bytes, md5 {entry['md5']}, {state}")
    return 0


def _check_data(args: argparse.Namespace) -> int:
    from textseld.data.checks import check_dataset

    report = check_dataset(root=args.root, splits=args.splits, progress=not args.no_progress)
    for problem in report.problems:
        print(problem)
    print(report.summary())
    return 0 if report.ok else 1
