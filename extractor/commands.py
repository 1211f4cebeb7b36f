"""`storyline extract`: videos or a manifest -> shots and features in a store.

Small jobs start fast: heavy modules are imported when a command uses them, and Ray is
started only when it pays (a cluster to join, a job record asked for, or enough videos
left for more than one worker); otherwise the videos are extracted in this process.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..store import FeatureStore, StoreError
from ..store.jobs import new_job_id
from .decode import MIN_DECODE_SIDE
from .encoder import EncoderError, load_encoder
from .manifest import ManifestEntry, ManifestError, entries_for_paths, read_manifest, safe_id
from .pipeline import ExtractionSettings
from .pool import RayOptions
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
    parser.add_argument(
        "--detector",
        choices=DETECTORS,
        default=ExtractionSettings.detector,
        help="shot detector (default adaptive; transnetv2 needs storyline[transnetv2])",
    )
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


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    """`storyline extract` options for running as a Ray job."""
    group = parser.add_argument_group(
        "Ray (used with --address, RAY_ADDRESS or --job-id, or when enough videos are left "
        "for more than one worker; else the videos are extracted in this process)"
    )
    group.add_argument("--no-ray", action="store_true", help="extract in this process only")
    group.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, or local)")
    group.add_argument("--job-id", help="job id (default: a new unique one); reuse to resume")
    group.add_argument(
        "--retry-failed", action="store_true", help="re-run only the failed videos of --job-id"
    )
    group.add_argument(
        "--workers", type=int, help="actors (default: one per --num-cpus CPUs of every node)"
    )
    group.add_argument("--num-cpus", type=float, default=RayOptions.num_cpus, help="per actor")
    group.add_argument(
        "--num-gpus",
        type=float,
        help="GPU share per actor (default: the node's GPUs / its actors; 0 without GPUs)",
    )
    group.add_argument(
        "--max-retries",
        type=int,
        default=RayOptions.max_retries,
        help="re-runs of a video whose worker died",
    )


def wants_ray(args: argparse.Namespace, videos_left: int) -> bool:
    """Ray when it pays: a cluster to join, a job record to keep, or more than one worker's
    worth of videos on this machine. One video alone runs faster without it."""
    if args.no_ray:
        return False
    if args.address or os.environ.get("RAY_ADDRESS") or args.job_id or args.retry_failed:
        return True
    local_workers = int((os.cpu_count() or 1) // args.num_cpus)
    if args.workers is not None:
        local_workers = min(local_workers, args.workers) if args.workers > 1 else 1
    return videos_left > 1 and local_workers > 1


def print_summary(summary: RunSummary, store_url: str, *, skipped: int = 0) -> None:
    skipped += summary.count("skipped")
    print(
        f"{summary.count('complete')} complete, {skipped} skipped (already complete), "
        f"{summary.count('failed')} failed; {summary.frames} frames in {summary.seconds:.1f} s "
        f"-> {store_url}"
    )
    for outcome in summary.failed:
        print(f"failed {outcome.video_id}: {outcome.error}")


def _job_id(args: argparse.Namespace, store: FeatureStore) -> str:
    if args.retry_failed and not args.job_id:
        raise ManifestError("--retry-failed needs --job-id")
    job_id = args.job_id or new_job_id()
    if safe_id(job_id) != job_id:
        raise ManifestError(f"job id {job_id!r} may only hold letters, digits, '.', '_', '-'")
    if args.retry_failed and job_id not in store.root.get("jobs", {}):
        raise StoreError(f"no job {job_id!r} in {store.url} to retry")
    return job_id


def run(args: argparse.Namespace) -> int:
    from .transnet import TransNetUnavailable, check_installed

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
        if args.detector == "transnetv2":
            check_installed()
        store = FeatureStore(args.store)
        store.check_encoder(encoder.name, encoder.id)
        job_id = _job_id(args, store)
    except (ManifestError, EncoderError, StoreError, TransNetUnavailable) as exc:
        print(f"storyline extract: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    complete = set(store.video_ids(encoder=encoder.name))  # the store's index: one read
    left = [e for e in entries if e.id not in complete]
    if wants_ray(args, len(left)):  # the encoder above was loaded to check it and name it
        from .ray_runner import run_command  # imports Ray: only on this path

        return run_command(
            args,
            entries,
            settings_from_args(args),
            store=store,
            encoder_id={"name": encoder.name, "id": encoder.id},
            job_id=job_id,
        )
    skipped = len(entries) - len(left)
    if skipped:
        print(f"skipping {skipped} of {len(entries)} videos: already complete", file=sys.stderr)
    if not left:
        print("nothing left to do: nothing started", file=sys.stderr)
        print_summary(RunSummary(), store.url, skipped=skipped)
        return EXIT_OK
    summary = extract_all(left, store, encoder, settings_from_args(args), progress=not args.quiet)
    print_summary(summary, store.url, skipped=skipped)
    return EXIT_SOME_FAILED if summary.failed else EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract", help="extract per-shot features of videos into a store"
    )
    add_extraction_options(parser)
    add_ray_options(parser)
    parser.set_defaults(func=run)
