"""Extraction on Ray: a pool of actors that each hold the encoder once and run
:func:`~.run.extract_entry`, driven by one process that owns the job record and the index.

Ray supplies the pooling, back-pressure and restarts: ``ray.util.ActorPool`` hands a video
to an idle actor only, so at most ``workers`` videos are in flight and the driver keeps
only counters, never a list of results; actors restart when their process dies
(``max_restarts=-1``) and Ray re-runs the video they held up to ``max_retries`` times
(``max_task_retries``) before the driver records it failed and moves on.

The pool is sized from the cluster's shape (:mod:`.pool`). Actors post the frames they
have decoded to a small :class:`ProgressBoard` actor every few seconds (fire-and-forget);
the driver reads it once per record write, so a 2-hour movie shows progress long before
it ends.
"""

from __future__ import annotations

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
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError
from ray.util import ActorPool
from tqdm import tqdm

from ..store import FeatureStore, StoreError
from ..store.index import IndexWriter
from ..store.jobs import (
    COMPLETE,
    FAILED,
    PENDING,
    RUNNING,
    JobRecord,
    JobSpec,
    JobState,
)
from .decode import VideoMeta
from .manifest import ManifestEntry
from .pipeline import ExtractionSettings
from .pool import PoolPlan, RayOptions, nodes_from_ray, plan_pool
from .run import VideoOutcome, extract_entry, index_outcome

__all__ = [
    "EncoderSpec",
    "ExtractWorker",
    "JobCancelled",
    "JobResult",
    "ProgressBoard",
    "RayOptions",
    "init_ray",
    "plan_workers",
    "run_job",
]


class JobCancelled(Exception):
    """The driver was asked to stop (SIGTERM from `ray job stop`, or Ctrl-C)."""


@dataclass(frozen=True)
class EncoderSpec:
    """What each actor loads: the arguments of ``load_encoder``, not the module itself, so
    a restarted actor rebuilds exactly the same encoder."""

    name: str | None = None
    checkpoint: str | None = None
    input_size: int | None = None

    def identity(self) -> dict[str, str]:
        """{"name", "id"} of the encoder this spec loads (loads it here, on CPU, once)."""
        from .encoder import load_encoder

        encoder = load_encoder(self.name, self.checkpoint, input_size=self.input_size, device="cpu")
        return {"name": encoder.name, "id": encoder.id}


@dataclass(frozen=True)
class JobResult:
    job_id: str
    state: JobState
    counts: dict[str, int]
    shots: int
    frames: int
    seconds: float
    errors: dict[str, str]
    skipped: int = 0  # videos already complete in the store, not sent to a worker
    workers: int = 0  # actors started (0: nothing was left to do)


class ProgressBoard:
    """A Ray actor holding, per video in flight, the frames decoded so far and its frame
    count. Workers post to it; the driver reads it once per record write."""

    def __init__(self) -> None:
        self.videos: dict[str, tuple[int, int]] = {}

    def report(self, video_id: str, frames: int, frame_count: int) -> None:
        self.videos[video_id] = (frames, frame_count)

    def clear(self, video_id: str) -> None:
        self.videos.pop(video_id, None)

    def snapshot(self) -> dict[str, tuple[int, int]]:
        return dict(self.videos)


class _Reporter:
    """An actor's side of the board: posts at most every ``interval`` seconds, never waits."""

    def __init__(self, board: Any, video_id: str, interval: float) -> None:
        self.board, self.video_id, self.interval = board, video_id, interval
        self.frames = self.frame_count = 0
        self.last = 0.0

    def meta(self, meta: VideoMeta) -> None:
        self.frame_count = meta.frame_count
        self._post()

    def progress(self, frames: int) -> None:
        self.frames += frames
        if time.monotonic() - self.last >= self.interval:
            self._post()

    def _post(self) -> None:
        self.last = time.monotonic()
        self.board.report.remote(self.video_id, self.frames, self.frame_count)

    def done(self) -> None:
        self.board.clear.remote(self.video_id)


class ExtractWorker:
    """A Ray actor: the encoder, loaded once, on the GPU Ray gave it or on CPU."""

    def __init__(
        self,
        store_url: str,
        encoder: EncoderSpec,
        settings: ExtractionSettings,
        threads: int,
        board: Any = None,
        progress_interval: float = 2.0,
    ) -> None:
        import torch

        from .encoder import load_encoder

        torch.set_num_threads(threads)  # one thread per CPU held: more would only contend
        self.gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        self.cuda = torch.cuda.is_available()
        self.device = "cuda" if self.gpu_ids and self.cuda else "cpu"
        self.encoder = load_encoder(
            encoder.name, encoder.checkpoint, input_size=encoder.input_size, device=self.device
        )
        self.store = FeatureStore(store_url, index_writes=False)  # the driver indexes
        self.settings = settings
        self.board = board
        self.progress_interval = progress_interval

    def describe(self) -> dict[str, Any]:
        return {
            "actor_id": ray.get_runtime_context().get_actor_id(),
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
            "device": self.device,
            "gpu_ids": self.gpu_ids,
            "cuda": self.cuda,
            "encoder": {"name": self.encoder.name, "id": self.encoder.id},
        }

    def extract(self, entry: ManifestEntry) -> VideoOutcome:
        """Never raises: a video or store error comes back as a failed outcome."""
        reporter = _Reporter(self.board, entry.id, self.progress_interval) if self.board else None
        try:
            return extract_entry(
                entry,
                self.store,
                self.encoder,
                self.settings,
                on_progress=reporter.progress if reporter else None,
                on_meta=reporter.meta if reporter else None,
            )
        except Exception as exc:  # extract_entry catches video errors; this is the rest
            return VideoOutcome(
                entry.id, entry.video, "failed", error=f"{type(exc).__name__}: {exc}"
            )
        finally:
            if reporter is not None:
                reporter.done()


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


def plan_workers(options: RayOptions) -> PoolPlan:
    """The pool for the cluster Ray sees now (see :func:`.pool.plan_pool`)."""
    return plan_pool(
        nodes_from_ray(ray.nodes()),
        num_cpus=options.num_cpus,
        num_gpus=options.num_gpus,
        workers=options.workers,
    )


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise JobCancelled(f"signal {signum}")


def run_job(
    entries: Sequence[ManifestEntry],
    store: FeatureStore,
    *,
    encoder: EncoderSpec,
    settings: ExtractionSettings,
    options: RayOptions | None = None,
    job_id: str,
    manifest: str,
    retry_failed: bool = False,
    progress: bool = True,
    encoder_id: dict[str, str] | None = None,
) -> JobResult:
    """Run (or resume, or retry the failures of) a job.

    The record is written before Ray is touched: videos the store's index already holds
    complete are marked so and never sent, and when nothing is left no Ray starts. Else
    this joins (or starts, see :func:`init_ray`) Ray, sizes the pool for the cluster and
    the work left, and starts every actor at once. ``encoder_id`` ({"name", "id"}) saves
    loading the encoder here when the caller already did. A pool the cluster cannot hold
    raises :class:`~.pool.PoolError` before anything runs.
    """
    started = time.perf_counter()
    options = options or RayOptions()
    enc = encoder_id or encoder.identity()
    store.register_encoder(enc["name"], enc["id"])  # the driver is the root's one writer
    spec = JobSpec(
        job_id=job_id,
        manifest=manifest,
        encoder=enc,
        settings=settings.to_attrs(),
        ray=asdict(options),
    )
    record = JobRecord.open(
        store,
        spec,
        [e.id for e in entries],
        [e.video for e in entries],
        interval=options.update_interval,
    )
    index = IndexWriter(store, interval=options.update_interval)
    _reconcile_index(record, store, index, enc["name"])
    by_id = {e.id: e for e in entries}
    wanted = (COMPLETE, FAILED) if not retry_failed else (PENDING, RUNNING, COMPLETE)
    todo = [by_id[v] for i, v in enumerate(record.ids) if record.status[i] not in wanted]
    todo, skipped = _skip_complete(todo, store, enc["name"], record)
    if not todo:
        record.flush(state="succeeded")
        return _result(record, job_id, "succeeded", started, skipped, workers=0)
    started_ray = init_ray(options.address)
    actors: list[Any] = []
    main = threading.current_thread() is threading.main_thread()  # signals need the main one
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main else None
    try:
        plan = plan_workers(options)
        workers = min(plan.workers, len(todo))
        board = ray.remote(ProgressBoard).options(num_cpus=0).remote()
        actor_class = ray.remote(ExtractWorker).options(
            num_cpus=plan.num_cpus,
            num_gpus=plan.num_gpus,
            max_restarts=-1,
            max_task_retries=options.max_retries,
        )
        actors = [  # created at once: Ray starts their processes concurrently
            actor_class.remote(
                store.url, encoder, settings, plan.threads, board, options.progress_interval
            )
            for _ in range(workers)
        ]
        described = ray.get([a.describe.remote() for a in actors])
        for d in described:
            if d["encoder"] != enc:
                raise RuntimeError(f"actor loaded encoder {d['encoder']}, the driver {enc}")
        _say_cpu_fallback(described)
        record.set_ray(
            {
                **asdict(options),
                **plan.to_attrs(),
                "workers": workers,
                "actors": [
                    {k: d[k] for k in ("pid", "node", "device", "gpu_ids")} for d in described
                ],
            }
        )
        pool = ActorPool(actors)
        actor_ids = {a: d["actor_id"] for a, d in zip(actors, described, strict=True)}
        state = _drive(pool, actor_ids, todo, record, index, board, options, progress=progress)
    except (JobCancelled, KeyboardInterrupt):
        state = "cancelled"
    except BaseException:
        record.flush(state="failed")
        index.flush(force=True)
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        for actor in actors:
            ray.kill(actor, no_restart=True)
        if started_ray:
            ray.shutdown()
    if state == "cancelled":
        for vid in record.ids_with(RUNNING):  # never finished: pending for a resume
            record.mark(vid, PENDING)
    record.in_flight = []
    record.flush(state=state)
    index.flush(force=True)
    return _result(record, job_id, state, started, skipped, workers=len(actors))


def _reconcile_index(
    record: JobRecord, store: FeatureStore, index: IndexWriter, encoder: str
) -> None:
    """Index what a killed driver's record holds complete but its index does not yet (the
    two are written apart, seconds apart): one read for each of those few videos."""
    listed = set(store.video_ids(encoder=encoder)) if record.ids_with(COMPLETE) else set()
    for vid in record.ids_with(COMPLETE):
        if vid in listed:
            continue
        info = store.status(vid)
        if (
            info is not None
            and info.status == "complete"
            and encoder in info.attrs.get("features", {})
        ):
            index.complete(
                vid, n_shots=info.n_shots or 0, encoder=encoder, source=info.attrs.get("source")
            )
    index.flush(force=True)


def _skip_complete(
    todo: list[ManifestEntry], store: FeatureStore, encoder: str, record: JobRecord
) -> tuple[list[ManifestEntry], int]:
    """Drop the videos the store's index holds complete for ``encoder``; mark them so."""
    complete = set(store.video_ids(encoder=encoder)) if todo else set()
    left = []
    for entry in todo:
        if entry.id in complete:
            record.mark(entry.id, COMPLETE)
        else:
            left.append(entry)
    skipped = len(todo) - len(left)
    record.attrs["skipped"] = skipped
    if skipped:
        print(
            f"job {record.attrs['id']}: skipping {skipped} of {len(record.ids)} videos: "
            "already complete in the store",
            file=sys.stderr,
        )
    return left, skipped


def _say_cpu_fallback(described: list[dict[str, Any]]) -> None:
    """One message for the job when actors were given GPUs that torch cannot use."""
    stranded = [d for d in described if d["gpu_ids"] and d["device"] == "cpu"]
    if stranded:
        ids = sorted({g for d in stranded for g in d["gpu_ids"]})
        print(
            f"storyline extract: {len(stranded)} of {len(described)} actors hold a share of "
            f"GPU(s) {', '.join(ids)} but torch sees no CUDA device there: their encoders run "
            "on CPU (install a CUDA build of torch on the workers, or use --num-gpus 0)",
            file=sys.stderr,
        )


def _result(
    record: JobRecord, job_id: str, state: JobState, started: float, skipped: int, workers: int
) -> JobResult:
    return JobResult(
        job_id=job_id,
        state=state,
        counts=record.counts(),
        shots=int(record.attrs["shots"]),
        frames=int(record.attrs["frames"]),
        seconds=time.perf_counter() - started,
        errors=dict(record.errors),
        skipped=skipped,
        workers=workers,
    )


def _in_flight(
    board: Any, in_flight: dict[str, ManifestEntry], timeout: float
) -> list[dict[str, Any]] | None:
    """The videos in flight with their progress, from the board (None if it is slow)."""
    try:
        snapshot = ray.get(board.snapshot.remote(), timeout=timeout)
    except (GetTimeoutError, RayActorError):
        return None
    videos = []
    for entry in in_flight.values():
        frames, frame_count = snapshot.get(entry.id, (0, 0))
        videos.append(
            {
                "id": entry.id,
                "source": entry.video,
                "frames": frames,
                "frame_count": frame_count or None,  # None until the worker has probed it
                "progress": round(frames / frame_count, 4) if frame_count else 0.0,
            }
        )
    return sorted(videos, key=lambda v: v["id"])


def _drive(
    pool: ActorPool,
    actor_ids: dict[Any, str],
    todo: list[ManifestEntry],
    record: JobRecord,
    index: IndexWriter,
    board: Any,
    options: RayOptions,
    *,
    progress: bool,
) -> JobState:
    """Keep every actor busy, collect outcomes as they come, write the record every few s."""
    in_flight: dict[str, ManifestEntry] = {}  # actor id -> the video it holds
    handles = {aid: a for a, aid in actor_ids.items()}
    queue = iter(todo)
    encoder = record.attrs["encoder"]["name"]

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

    def flush() -> None:
        if record.due():
            videos = _in_flight(board, in_flight, timeout=min(1.0, options.update_interval))
            held = {e.id for e in in_flight.values()}  # what ended meanwhile is not in flight
            record.in_flight = [v for v in (videos or record.in_flight) if v["id"] in held]
            record.flush()
        index.flush()

    bar = tqdm(total=len(todo), unit="video", disable=not progress, dynamic_ncols=True)
    try:
        fill()
        while pool.has_next():
            try:
                outcome = pool.get_next_unordered(timeout=min(options.update_interval, 0.5))
            except TimeoutError:
                flush()
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
            index_outcome(index, outcome, encoder)
            bar.update(1)
            bar.set_postfix(
                shots=record.attrs["shots"],
                frames_per_s=f"{record.frames_per_s():.0f}",
                failed=int((record.status == FAILED).sum()),
                refresh=False,
            )
            fill()
            flush()
    finally:
        bar.close()
    return "succeeded"  # ran to the end; failed videos are in the counts, with reasons


def _record(record: JobRecord, outcome: VideoOutcome) -> None:
    if outcome.status == "failed":
        record.mark(outcome.video_id, FAILED, error=outcome.error)
    else:  # complete, or skipped because already complete
        record.mark(outcome.video_id, COMPLETE)
        if outcome.status == "complete":
            record.add_work(shots=outcome.shots, frames=outcome.frames, seconds=outcome.seconds)


# ---------------------------------------------------------------------- command line
def _absolute(path: str) -> str:
    """Local paths made absolute, so a job record means the same from any directory."""
    return path if "://" in path else os.path.abspath(path)


def run_command(
    args: Any,
    entries: Sequence[ManifestEntry],
    settings: ExtractionSettings,
    *,
    store: FeatureStore,
    encoder_id: dict[str, str],
    job_id: str,
) -> int:
    """`storyline extract` as a Ray job: exit 0 if every video is complete, 1 if some
    failed, 2 on a usage error, 130 if cancelled."""
    print(f"job {job_id}: {len(entries)} videos -> {store.url}", file=sys.stderr)
    try:
        result = run_job(
            entries,
            store,
            encoder=EncoderSpec(args.encoder, args.checkpoint, args.input_size),
            encoder_id=encoder_id,
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
    except (StoreError, ValueError) as exc:  # PoolError is a ValueError
        print(f"storyline extract: error: {exc}", file=sys.stderr)
        return 2
    except RayActorError as exc:
        print(f"storyline extract: error: workers could not start: {exc}", file=sys.stderr)
        return 2
    except JobCancelled as exc:
        print(f"storyline extract: {exc}", file=sys.stderr)
        return 130
    counts = result.counts
    print(
        f"job {job_id} {result.state}: {counts['complete']} complete ({result.skipped} "
        f"skipped as already complete), {counts['failed']} failed, {counts['pending']} "
        f"pending; {result.shots} shots, {result.frames} frames in {result.seconds:.1f} s "
        f"on {result.workers} workers -> {store.url}"
    )
    for video_id, error in sorted(result.errors.items()):
        print(f"failed {video_id}: {error}")
    if result.state == "cancelled":
        return 130
    return 1 if counts["failed"] else 0
