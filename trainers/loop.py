"""The training loop every trainer shares (temporal, tags, QA, encoder; bench too).

nanoGPT's shape: the model's ``forward(*inputs, targets) -> (out, loss)``, a
``get_batch(step)`` that returns ``(*inputs, targets)`` for one step (a pure function of
the step and the trainer's seed, so a resumed run sees the batches an uninterrupted one
would), an ``evaluate()`` that returns the validation metrics, and ``lr_at(step)`` from
:mod:`.schedule`. The loop owns what they all need and nothing else: the learning rate,
the optimizer step (with autocast on GPU), validation passes, keep-best, checkpoint saves
(through the trainer's ``save(step)``), the progress bar and the log lines. Each trainer
keeps its own model, batches, metrics and checkpoint contents.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from .schedule import lr_at

Batch = Sequence[torch.Tensor]  # (*inputs, targets): model(*batch) -> (out, loss)


@dataclass(frozen=True)
class LoopConfig:
    """How long and how fast one run trains, and when it validates."""

    steps: int  # optimizer steps in total (a resumed run continues to this)
    lr: float  # peak learning rate (warm-up, then cosine decay: schedule.lr_at)
    min_lr: float  # learning rate at the end of the decay
    warmup: int  # steps of linear warm-up
    eval_interval: int  # steps between validation passes (and checkpoint saves)
    keep_best: bool = False  # return (and checkpoint) the best validation pass, not the last
    select: str | None = None  # the evaluate() key that "best" maximises (keep_best needs it)
    desc: str = "train"  # progress bar label

    @classmethod
    def of(cls, train_config: Any, desc: str, **overrides: Any) -> LoopConfig:
        """The loop settings a trainer's config names alike (steps, lr, min_lr, warmup,
        eval_interval), with ``overrides`` for what it names otherwise."""
        shared = ("steps", "lr", "min_lr", "warmup", "eval_interval")
        found = {k: getattr(train_config, k) for k in shared if hasattr(train_config, k)}
        return cls(**{**found, "desc": desc, **overrides})


@dataclass
class LoopState:
    """Where a run stands; a trainer rebuilds it from its checkpoint to resume."""

    step: int = 0  # optimizer steps done
    best: float = -math.inf  # best value of config.select so far
    best_step: int = 0  # step of that pass (the checkpoint's, on resume)
    loss: float = math.nan  # last training loss
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per pass
    seen: int = 0  # training examples this process went through (throughput)
    seconds: float = 0.0  # wall time this process spent in the loop

    @property
    def per_second(self) -> float | None:
        return self.seen / self.seconds if self.seconds > 0 and self.seen else None


def run(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: LoopConfig,
    get_batch: Callable[[int], Batch],
    *,
    evaluate: Callable[[], dict[str, Any]] | None = None,
    save: Callable[[int, LoopState], None] | None = None,
    state: LoopState | None = None,
    amp: torch.dtype | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> LoopState:
    """Train ``model`` from ``state.step`` to ``config.steps``; return the final state.

    Each optimizer param group trains at ``lr_at(step)``, scaled by the group's
    ``peak_lr / config.lr`` when it has one (a new head that learns faster than its
    trunk). Every ``eval_interval`` steps and at the last one, ``evaluate()`` runs and the
    pass goes into ``state.history``; ``save(step, state)`` then writes the checkpoint:
    at every pass, or with ``keep_best`` only at passes that beat the best so far, so the
    file always holds the model the run returns. ``amp`` (bfloat16 or float16) turns on
    autocast; float16 also gets a gradient scaler. The model is left in eval mode.
    """
    if config.keep_best and not config.select:
        raise ValueError("keep_best needs config.select: the validation metric to maximise")
    state = state if state is not None else LoopState()
    device_type = next(model.parameters()).device.type
    scaler = torch.amp.GradScaler(device_type, enabled=amp == torch.float16)
    best_weights = (
        copy.deepcopy(model.state_dict()) if config.keep_best and state.step > 0 else None
    )
    model.train()
    bar = tqdm(
        total=config.steps,
        initial=state.step,
        desc=config.desc,
        unit="step",
        file=sys.stderr,
        disable=not progress,
    )
    t0 = time.perf_counter()
    while state.step < config.steps:
        lr = lr_at(state.step, config)
        for group in optimizer.param_groups:
            group["lr"] = group["peak_lr"] * lr / config.lr if "peak_lr" in group else lr
        batch = get_batch(state.step)
        with torch.autocast(device_type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            _, loss = model(*batch)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        state.step += 1
        state.seen += int(batch[0].shape[0])
        state.loss = float(loss.detach())
        bar.update(1)
        bar.set_postfix(loss=f"{state.loss:.4f}", refresh=False)
        if state.step % config.eval_interval == 0 or state.step == config.steps:
            metrics = evaluate() if evaluate is not None else {}
            improved = True
            if config.select and config.select in metrics:
                value = float(metrics[config.select])
                improved = value > state.best
                state.best = max(state.best, value)
                bar.set_postfix(loss=f"{state.loss:.3f}", val=f"{value:.3f}")
            if improved:
                state.best_step = state.step
                if config.keep_best:
                    best_weights = copy.deepcopy(model.state_dict())
            state.history.append({"step": state.step, "loss": state.loss, **metrics})
            if save is not None and (improved or not config.keep_best):
                save(state.step, state)
            if log is not None:
                log(_line(state, metrics, best=improved and config.select in metrics))
    state.seconds += time.perf_counter() - t0
    bar.close()
    if config.keep_best and best_weights is not None:
        model.load_state_dict(best_weights)
    else:
        state.best_step = state.step
    model.eval()
    return state


def _line(state: LoopState, metrics: dict[str, Any], *, best: bool) -> str:
    """``step 500: loss 0.1234, val accuracy 0.4567 (best)``: one line per pass."""
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
    return (
        f"step {state.step}: loss {state.loss:.4f}"
        + (f", val {shown}" if shown else "")
        + (" (best)" if best else "")
    )
