"""How many extraction actors a cluster holds, and what each one asks Ray for.

Decoding on CPU cores is the cost (DESIGN "Distribution"), so the pool is sized by cores:
one actor per ``num_cpus`` CPUs of every node, and on GPU nodes each actor takes an equal
share of its node's GPUs (``node GPUs / actors on the node``), so every core decodes and the
GPUs are shared by the encoders. Pure functions over the nodes' resources: they run and
are tested without Ray.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GPU_SHARE_STEP = 1e-4  # Ray's resolution for fractional resources: shares are floored to it
_EPS = 1e-9


class PoolError(ValueError):
    """A pool request the cluster cannot hold; the message gives the numbers."""


@dataclass(frozen=True)
class RayOptions:
    """How a job uses the cluster; saved in the job record."""

    address: str | None = None  # Ray address; None: RAY_ADDRESS, else an embedded local Ray
    workers: int | None = None  # actors; None: as many as the cluster holds (see plan_pool)
    num_cpus: float = 1.0  # CPUs per actor (its torch threads follow this)
    num_gpus: float | None = None  # GPU share per actor; None: node GPUs / actors on the node
    max_retries: int = 2  # re-runs of a video whose worker died, before it is failed
    update_interval: float = 2.0  # seconds between job-record writes
    progress_interval: float = 2.0  # seconds between an actor's frame-count reports


@dataclass(frozen=True)
class Node:
    """One alive node's schedulable resources."""

    cpus: float
    gpus: float


@dataclass(frozen=True)
class PoolPlan:
    """The pool to start: ``workers`` actors of ``num_cpus`` CPUs and ``num_gpus`` GPU each."""

    workers: int
    num_cpus: float
    num_gpus: float
    threads: int  # torch threads per actor: one per CPU it holds
    capacity: int  # actors of this shape the cluster holds now

    def to_attrs(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "threads": self.threads,
            "capacity": self.capacity,
        }


def nodes_from_ray(ray_nodes: Iterable[Mapping[str, Any]]) -> list[Node]:
    """Alive nodes from ``ray.nodes()``."""
    return [
        Node(float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("GPU", 0)))
        for n in ray_nodes
        if n.get("Alive", n.get("alive", False))
    ]


def _fits(node: Node, num_cpus: float, num_gpus: float) -> int:
    by_cpu = math.floor(node.cpus / num_cpus + _EPS)
    if num_gpus <= 0:
        return by_cpu
    return min(by_cpu, math.floor(node.gpus / num_gpus + _EPS))


def _floor_share(share: float) -> float:
    return math.floor(share / GPU_SHARE_STEP + _EPS) * GPU_SHARE_STEP


def _describe(nodes: Sequence[Node]) -> str:
    cpus, gpus = sum(n.cpus for n in nodes), sum(n.gpus for n in nodes)
    return f"{len(nodes)} node(s), {cpus:g} CPUs, {gpus:g} GPUs in all"


def default_gpu_share(nodes: Sequence[Node], num_cpus: float) -> float:
    """Each actor's share of its node's GPUs when every CPU of a GPU node runs an actor.

    The smallest share over the GPU nodes, so every GPU node fits its actors; at most one
    GPU per actor (an actor's encoder uses one device). 0 when the cluster has no GPU.
    """
    shares = []
    for node in nodes:
        if node.gpus <= 0:
            continue
        actors = math.floor(node.cpus / num_cpus + _EPS)
        if actors > 0:
            shares.append(min(1.0, node.gpus / actors))
    return _floor_share(min(shares)) if shares else 0.0


def plan_pool(
    nodes: Sequence[Node],
    *,
    num_cpus: float = 1.0,
    num_gpus: float | None = None,
    workers: int | None = None,
) -> PoolPlan:
    """Size the pool for ``nodes``, or raise :class:`PoolError` saying why it cannot fit.

    ``num_gpus`` None: the node's GPUs shared equally by its actors (0 without GPUs); a
    value overrides it. ``workers`` None: as many actors as the cluster holds.
    """
    if num_cpus <= 0:
        raise PoolError(f"--num-cpus must be > 0, not {num_cpus:g}")
    if num_gpus is not None and num_gpus < 0:
        raise PoolError(f"--num-gpus must be >= 0, not {num_gpus:g}")
    if workers is not None and workers < 1:
        raise PoolError(f"--workers must be >= 1, not {workers}")
    if not nodes:
        raise PoolError("the Ray cluster has no alive node")
    where = _describe(nodes)
    if num_gpus is None:
        share = default_gpu_share(nodes, num_cpus)
    else:
        share = num_gpus
        most_gpus = max(n.gpus for n in nodes)
        if share > 0 and most_gpus <= 0:
            raise PoolError(
                f"--num-gpus {share:g} asks each actor for a GPU share, but the cluster has no "
                f"GPU ({where}): use --num-gpus 0, or join a cluster with GPU nodes"
            )
        if share > most_gpus + _EPS:
            raise PoolError(
                f"--num-gpus {share:g} per actor, but the largest node has {most_gpus:g} GPUs "
                f"({where})"
            )
    most_cpus = max(n.cpus for n in nodes)
    if num_cpus > most_cpus + _EPS:
        raise PoolError(
            f"--num-cpus {num_cpus:g} per actor, but the largest node has {most_cpus:g} CPUs "
            f"({where})"
        )
    capacity = sum(_fits(n, num_cpus, share) for n in nodes)
    if capacity == 0:
        raise PoolError(f"no node holds an actor of {num_cpus:g} CPUs and {share:g} GPU ({where})")
    if workers is not None and workers > capacity:
        raise PoolError(
            f"--workers {workers}, but the cluster holds {capacity} actors of {num_cpus:g} "
            f"CPUs and {share:g} GPU ({where}): ask for fewer workers or smaller shares"
        )
    return PoolPlan(
        workers=capacity if workers is None else workers,
        num_cpus=num_cpus,
        num_gpus=share,
        threads=max(1, int(num_cpus)),
        capacity=capacity,
    )
