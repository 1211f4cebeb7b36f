"""`storyline extract`: videos or a manifest -> shots and features in a store."""

from __future__ import annotations

import argparse
import sys

from ..store import FeatureStore, StoreError
from .decode import MIN_DECODE_SIDE
from .encoder import EncoderError, load_encoder
from .manifest import ManifestEntry, ManifestError, entries_for_paths, read_manifest
from .pipeline import ExtractionSettings
from .ray_runner import add_ray_options, run_command
from .roots import Roots, outside_message
from .run import RunSummary, extract_all
from .shots import DETECTORS

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


def add_extraction_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that extracts (here, and on Ray)."""
    parser.add_argument("videos", nargs="*", help="video paths (or use --manifest)")
    parser.add_argument("--store", required=True, help="Zarr store: local path or fsspec URL")
    parser.add_argument("--manifest", help="text file (a path per line) or CSV manifest")
    parser.add_argument(
        "--encoder", help="encoder name in the store (default: 'random', or the checkpoint's stem)"
    )
    parser.add_argument("--checkpoint", help="encoder checkpoint (.pt); none = seeded random")
    parser.add_argument(
        "--input-size", type=int, help="encoder input size for the random encoder (default 224)"
    )
    parser.add_argument("--frames", action="store_true", help="also store the sampled frames")
    parser.add_argument("--detector", choices=DETECTORS, default=ExtractionSettings.detector)
    parser.add_argument("--threshold", type=float, help="detector threshold (scenedetect's)")
    parser.add_argument("--min-shot-frames", type=int, default=ExtractionSettings.min_shot_frames)
    parser.add_argument("--device", help="torch device for the encoder (default: cuda if any)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--root",
        action="append",
        help="refuse videos outside this folder or URL prefix (repeatable; the API sets it)",
    )


def entries_from_args(args: argparse.Namespace) -> list[ManifestEntry]:
    """The job's videos; with ``--root``, refused if any lies outside the roots (checked
    here, when the manifest is read, because it may have changed since the API saw it)."""
    if bool(args.manifest) == bool(args.videos):
        raise ManifestError("give either video paths or --manifest, not both or neither")
    try:
        roots = Roots.of(args.root) if getattr(args, "root", None) else None
    except ValueError as exc:
        raise ManifestError(f"--root: {exc}") from exc
    if roots is not None and args.manifest and roots.resolve(args.manifest) is None:
        raise ManifestError(outside_message("manifest", [args.manifest], roots))
    entries = read_manifest(args.manifest) if args.manifest else entries_for_paths(args.videos)
    if roots is not None:
        offenders = roots.outside([e.video for e in entries])
        if offenders:
            raise ManifestError(outside_message("videos", offenders, roots))
    return entries


def settings_from_args(args: argparse.Namespace) -> ExtractionSettings:
    return ExtractionSettings(
        detector=args.detector,
        threshold=args.threshold,
        min_shot_frames=args.min_shot_frames,
        store_frames=args.frames,
    )


def print_summary(summary: RunSummary, store_url: str) -> None:
    skipped = summary.count("skipped")
    print(
        f"{summary.count('complete')} complete, {skipped} skipped (already complete), "
        f"{summary.count('failed')} failed; {summary.frames} frames in {summary.seconds:.1f} s "
        f"-> {store_url}"
    )
    for outcome in summary.failed:
        print(f"failed {outcome.video_id}: {outcome.error}")


def run(args: argparse.Namespace) -> int:
    try:
        entries = entries_from_args(args)
        encoder = load_encoder(
            args.encoder, args.checkpoint, input_size=args.input_size, device=args.device
        )
        if encoder.input_size < MIN_DECODE_SIDE:
            raise EncoderError(
                f"extraction decodes frames at the encoder's input size, {encoder.input_size}"
                f" px; decord needs at least {MIN_DECODE_SIDE}"
            )
        store = FeatureStore(args.store)
        store.check_encoder(encoder.name, encoder.id)
    except (ManifestError, EncoderError, StoreError) as exc:
        print(f"storyline extract: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not args.no_ray:  # as a Ray job; the encoder above was loaded only to check it
        return run_command(args, entries, settings_from_args(args))
    complete = sum(store.is_complete(e.id, encoder.name) for e in entries)
    if complete:
        print(f"skipping {complete} of {len(entries)} videos: already complete", file=sys.stderr)
    summary = extract_all(
        entries, store, encoder, settings_from_args(args), progress=not args.quiet
    )
    print_summary(summary, store.url)
    return EXIT_SOME_FAILED if summary.failed else EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract", help="extract per-shot features of videos into a store"
    )
    add_extraction_options(parser)
    add_ray_options(parser)
    parser.set_defaults(func=run)
