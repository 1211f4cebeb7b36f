"""Extraction on Ray: a pool of actors that each hold the encoder once and run
:func:`~.run.extract_entry`, driven by one process that owns the job record.

Ray supplies the pooling, back-pressure and restarts: ``ray.util.ActorPool`` hands a video
to an idle actor only, so at most ``workers`` videos are in flight and the driver keeps
only counters, never a list of results; actors restart when their process dies
(``max_restarts=-1``) and Ray re-runs the video they held up to ``max_retries`` times
(``max_task_retries``) before the driver records it failed and moves on.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any

import ray
from ray.exceptions import ActorDiedError, RayActorError
from ray.util import ActorPool
from tqdm import tqdm

from ..store import FeatureStore, StoreError
from ..store.jobs import (
    COMPLETE,
    FAILED,
    PENDING,
    RUNNING,
    JobRecord,
    JobSpec,
    JobState,
    new_job_id,
)
from .manifest import ManifestEntry, safe_id
from .pipeline import ExtractionSettings
from .run import VideoOutcome, extract_entry

GPUS_PER_WORKER_DEFAULT = 0.25  # four decoders share a GPU: decoding, not the CNN, is the cost


class JobCancelled(Exception):
    """The driver was asked to stop (SIGTERM from `ray job stop`, or Ctrl-C)."""


@dataclass(frozen=True)
class RayOptions:
    """How a job uses the cluster; saved in the job record."""

    address: str | None = None  # Ray address; None: RAY_ADDRESS, else an embedded local Ray
    workers: int | None = None  # actors; None: as many as the cluster's CPUs/GPUs allow
    num_cpus: float = 1.0  # CPUs per actor (its torch threads follow this)
    num_gpus: float | None = None  # GPU share per actor; None: 0.25 if the cluster has GPUs
    max_retries: int = 2  # re-runs of a video whose worker died, before it is failed
    update_interval: float = 2.0  # seconds between job-record writes


@dataclass(frozen=True)
class EncoderSpec:
    """What each actor loads: the arguments of ``load_encoder``, not the module itself, so
    a restarted actor rebuilds exactly the same encoder."""

    name: str | None = None
    checkpoint: str | None = None
    input_size: int | None = None


@dataclass(frozen=True)
class JobResult:
    job_id: str
    state: JobState
    counts: dict[str, int]
    shots: int
    frames: int
    seconds: float
    errors: dict[str, str]


class ExtractWorker:
    """A Ray actor: the encoder, loaded once, on the GPU Ray gave it or on CPU."""

    def __init__(
        self, store_url: str, encoder: EncoderSpec, settings: ExtractionSettings, threads: int
    ) -> None:
        import torch

        from .encoder import load_encoder

        torch.set_num_threads(threads)  # one actor per CPU: more threads would only contend
        self.device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        self.encoder = load_encoder(
            encoder.name, encoder.checkpoint, input_size=encoder.input_size, device=self.device
        )
        self.store = FeatureStore(store_url)
        self.settings = settings

    def describe(self) -> dict[str, Any]:
        return {
            "actor_id": ray.get_runtime_context().get_actor_id(),
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
            "device": self.device,
            "encoder": {"name": self.encoder.name, "id": self.encoder.id},
        }

    def extract(self, entry: ManifestEntry) -> VideoOutcome:
        """Never raises: a video or store error comes back as a failed outcome."""
        try:
            return extract_entry(entry, self.store, self.encoder, self.settings)
        except Exception as exc:  # extract_entry catches video errors; this is the rest
            return VideoOutcome(
                entry.id, entry.video, "failed", error=f"{type(exc).__name__}: {exc}"
            )


def init_ray(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` or ``RAY_ADDRESS``, or start an embedded local Ray.

    ``address="local"`` is explicit because a bare ``ray.init()`` would join whatever
    cluster was last started on this machine. Returns True when this call started Ray.
    """
    if ray.is_initialized():
        return False
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        ray.init(address=target, log_to_driver=True)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False)
    return True


def plan_workers(options: RayOptions) -> tuple[int, float, int]:
    """(actors, GPU share per actor, torch threads per actor) for the cluster Ray sees."""
    resources = ray.cluster_resources()
    cpus, gpus = float(resources.get("CPU", 1)), float(resources.get("GPU", 0))
    num_gpus = options.num_gpus
    if num_gpus is None:
        num_gpus = GPUS_PER_WORKER_DEFAULT if gpus > 0 else 0.0
    if num_gpus < 0 or options.num_cpus <= 0:
        raise ValueError("--num-gpus must be >= 0 and --num-cpus > 0")
    if num_gpus > 0 and gpus == 0:
        print(
            f"storyline extract: no GPU in the cluster; --num-gpus {num_gpus} waits for one "
            "(an autoscaler may add it). Use --num-gpus 0 to run on CPU.",
            file=sys.stderr,
        )
    workers = options.workers
    if workers is None:
        workers = int(cpus // options.num_cpus)
        if num_gpus > 0 and gpus > 0:
            workers = min(workers, int(gpus / num_gpus + 1e-9))
        workers = max(workers, 1)
    return workers, num_gpus, max(1, int(options.num_cpus))


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise JobCancelled(f"signal {signum}")


def run_job(
    entries: Sequence[ManifestEntry],
    store: FeatureStore,
    *,
    encoder: EncoderSpec,
    settings: ExtractionSettings,
    options: RayOptions = RayOptions(),
    job_id: str,
    manifest: str,
    retry_failed: bool = False,
    progress: bool = True,
) -> JobResult:
    """Run (or resume, or retry the failures of) a job; the caller has called ``init_ray``.

    Resuming: videos the record holds complete are not sent; those sent anyway because the
    last record predates a killed driver are skipped by ``extract_entry``.
    """
    started = time.perf_counter()
    workers, num_gpus, threads = plan_workers(options)
    actor_class = ray.remote(ExtractWorker).options(
        num_cpus=options.num_cpus,
        num_gpus=num_gpus,
        max_restarts=-1,
        max_task_retries=options.max_retries,
    )
    actors = [actor_class.remote(store.url, encoder, settings, threads) for _ in range(workers)]
    pool: ActorPool | None = None
    record: JobRecord | None = None
    main = threading.current_thread() is threading.main_thread()  # signals need the main one
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main else None
    try:
        described = ray.get([a.describe.remote() for a in actors])
        actor_ids = {a: d["actor_id"] for a, d in zip(actors, described, strict=True)}
        enc = described[0]["encoder"]
        store.register_encoder(enc["name"], enc["id"])  # the driver is the root's one writer
        spec = JobSpec(
            job_id=job_id,
            manifest=manifest,
            encoder=enc,
            settings=settings.to_attrs(),
            ray={
                **asdict(options),
                "workers": workers,
                "num_gpus": num_gpus,
                "threads": threads,
                "actors": [{k: d[k] for k in ("pid", "node", "device")} for d in described],
            },
        )
        record = JobRecord.open(
            store,
            spec,
            [e.id for e in entries],
            [e.video for e in entries],
            interval=options.update_interval,
        )
        by_id = {e.id: e for e in entries}
        if retry_failed:
            todo = [by_id[v] for v in record.ids_with(FAILED)]
        else:
            todo = [
                by_id[v]
                for v in record.ids
                if record.status[record.index[v]] not in (COMPLETE, FAILED)
            ]
        pool = ActorPool(actors)
        state = _drive(pool, actor_ids, todo, record, options, progress=progress)
    except (JobCancelled, KeyboardInterrupt):
        state = "cancelled"
    except BaseException:
        if record is not None:
            record.flush(state="failed")
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        for actor in actors:
            ray.kill(actor, no_restart=True)
    if record is None:  # cancelled while the actors were still starting
        raise JobCancelled(f"job {job_id} cancelled before it started")
    if state == "cancelled":
        for vid in record.ids_with(RUNNING):  # never finished: pending for a resume
            record.mark(vid, PENDING)
    record.flush(state=state)
    counts = record.counts()
    return JobResult(
        job_id=job_id,
        state=state,
        counts=counts,
        shots=int(record.attrs["shots"]),
        frames=int(record.attrs["frames"]),
        seconds=time.perf_counter() - started,
        errors=dict(record.errors),
    )


def _drive(
    pool: ActorPool,
    actor_ids: dict[Any, str],
    todo: list[ManifestEntry],
    record: JobRecord,
    options: RayOptions,
    *,
    progress: bool,
) -> JobState:
    """Keep every actor busy, collect outcomes as they come, write the record every few s."""
    in_flight: dict[str, ManifestEntry] = {}  # actor id -> the video it holds
    handles = {aid: a for a, aid in actor_ids.items()}
    queue = iter(todo)

    def call(actor: Any, entry: ManifestEntry) -> ray.ObjectRef:
        in_flight[actor_ids[actor]] = entry
        return actor.extract.remote(entry)

    def fill() -> None:
        while pool.has_free():
            entry = next(queue, None)
            if entry is None:
                return
            record.mark(entry.id, RUNNING)
            pool.submit(call, entry)

    bar = tqdm(total=len(todo), unit="video", disable=not progress, dynamic_ncols=True)
    try:
        fill()
        while pool.has_next():
            try:
                outcome = pool.get_next_unordered(timeout=min(options.update_interval, 0.5))
            except TimeoutError:
                record.flush()
                continue
            except RayActorError as exc:
                entry = in_flight.pop(exc.actor_id or "", None)
                if entry is None:
                    raise
                if isinstance(exc, ActorDiedError):  # the pool dropped it; Ray restarts it
                    pool.push(handles[exc.actor_id])
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                outcome = VideoOutcome(
                    entry.id,
                    entry.video,
                    "failed",
                    error=(
                        f"worker died {options.max_retries + 1} times extracting it (killed, "
                        f"or out of memory): {type(exc).__name__}: {first}"
                    ),
                )
            else:
                for aid, entry in list(in_flight.items()):
                    if entry.id == outcome.video_id:
                        del in_flight[aid]
            _record(record, outcome)
            bar.update(1)
            bar.set_postfix(
                shots=record.attrs["shots"],
                frames_per_s=f"{record.frames_per_s():.0f}",
                failed=int((record.status == FAILED).sum()),
                refresh=False,
            )
            fill()
            record.flush()
    finally:
        bar.close()
    return "succeeded"  # ran to the end; failed videos are in the counts, with reasons


def _record(record: JobRecord, outcome: VideoOutcome) -> None:
    if outcome.status == "failed":
        record.mark(outcome.video_id, FAILED, error=outcome.error)
    else:  # complete, or skipped because already complete
        record.mark(outcome.video_id, COMPLETE)
        record.add_work(shots=outcome.shots, frames=outcome.frames)


# ---------------------------------------------------------------------- command line
def _absolute(path: str) -> str:
    """Local paths made absolute, so a job record means the same from any directory."""
    return path if "://" in path else os.path.abspath(path)


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    """`storyline extract` options for running as a Ray job."""
    group = parser.add_argument_group("Ray (default: an embedded local Ray, or RAY_ADDRESS)")
    group.add_argument("--no-ray", action="store_true", help="extract in this process only")
    group.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, or local)")
    group.add_argument("--job-id", help="job id (default: a new unique one); reuse to resume")
    group.add_argument(
        "--retry-failed", action="store_true", help="re-run only the failed videos of --job-id"
    )
    group.add_argument("--workers", type=int, help="actors (default: what the cluster holds)")
    group.add_argument("--num-cpus", type=float, default=RayOptions.num_cpus, help="per actor")
    group.add_argument(
        "--num-gpus", type=float, help="GPU share per actor (default 0.25 if GPUs, else 0)"
    )
    group.add_argument(
        "--max-retries",
        type=int,
        default=RayOptions.max_retries,
        help="re-runs of a video whose worker died",
    )


def run_command(
    args: argparse.Namespace, entries: Sequence[ManifestEntry], settings: ExtractionSettings
) -> int:
    """`storyline extract` on Ray: exit 0 if every video is complete, 1 if some failed,
    2 on a usage error, 130 if cancelled."""
    if args.retry_failed and not args.job_id:
        print("storyline extract: error: --retry-failed needs --job-id", file=sys.stderr)
        return 2
    job_id = args.job_id or new_job_id()
    if safe_id(job_id) != job_id:
        print(
            f"storyline extract: error: job id {job_id!r} may only hold letters, digits, "
            "'.', '_', '-'",
            file=sys.stderr,
        )
        return 2
    try:
        store = FeatureStore(args.store)
        if args.retry_failed and job_id not in store.root.get("jobs", {}):
            raise StoreError(f"no job {job_id!r} in {store.url} to retry")
    except StoreError as exc:
        print(f"storyline extract: error: {exc}", file=sys.stderr)
        return 2
    started_ray = init_ray(args.address)
    print(f"job {job_id}: {len(entries)} videos -> {store.url}", file=sys.stderr)
    try:
        result = run_job(
            entries,
            store,
            encoder=EncoderSpec(args.encoder, args.checkpoint, args.input_size),
            settings=settings,
            options=RayOptions(
                address=args.address,
                workers=args.workers,
                num_cpus=args.num_cpus,
                num_gpus=args.num_gpus,
                max_retries=args.max_retries,
            ),
            job_id=job_id,
            manifest=_absolute(args.manifest) if args.manifest else "<arguments>",
            retry_failed=args.retry_failed,
            progress=not args.quiet,
        )
    except (StoreError, ValueError) as exc:
        print(f"storyline extract: error: {exc}", file=sys.stderr)
        return 2
    except RayActorError as exc:
        print(f"storyline extract: error: workers could not start: {exc}", file=sys.stderr)
        return 2
    except JobCancelled as exc:
        print(f"storyline extract: {exc}", file=sys.stderr)
        return 130
    finally:
        if started_ray:
            ray.shutdown()
    counts = result.counts
    print(
        f"job {job_id} {result.state}: {counts['complete']} complete, {counts['failed']} "
        f"failed, {counts['pending']} pending; {result.shots} shots, {result.frames} frames "
        f"in {result.seconds:.1f} s -> {store.url}"
    )
    for video_id, error in sorted(result.errors.items()):
        print(f"failed {video_id}: {error}")
    if result.state == "cancelled":
        return 130
    return 1 if counts["failed"] else 0
