"""The shared training loop: schedule per param group, keep-best, checkpoint saves, resume."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from storyline.trainers.loop import LoopConfig, LoopState, run
from storyline.trainers.schedule import lr_at


class Regressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body, self.head = nn.Linear(3, 3), nn.Linear(3, 1)

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None):
        out = self.head(self.body(x)).squeeze(1)
        return out, None if targets is None else F.mse_loss(out, targets)


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    x = torch.randn(8, 3, generator=g)
    return x, x.sum(1)


def test_keep_best_returns_and_saves_only_the_best_pass() -> None:
    torch.manual_seed(0)
    model = Regressor()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scores = iter([0.5, 0.9, 0.7])  # validation passes at steps 2, 4, 6
    saved: dict[int, dict] = {}
    lines: list[str] = []
    config = LoopConfig(
        steps=6, lr=1e-2, min_lr=1e-3, warmup=1, eval_interval=2, keep_best=True, select="score"
    )
    state = run(
        model,
        optimizer,
        config,
        batch,
        evaluate=lambda: {"score": next(scores)},
        save=lambda step, s: saved.update({step: copy.deepcopy(model.state_dict())}),
        progress=False,
        log=lines.append,
    )
    assert state.step == 6 and state.best == 0.9 and state.best_step == 4
    assert sorted(saved) == [2, 4]  # the file always holds the model the run returns
    for name, value in model.state_dict().items():
        assert torch.equal(value, saved[4][name]), name
    assert [h["step"] for h in state.history] == [2, 4, 6]
    assert lines[1].startswith("step 4: loss") and lines[1].endswith("(best)")
    assert not model.training


def test_schedule_scales_each_group_and_resume_continues() -> None:
    config = LoopConfig(steps=4, lr=1e-2, min_lr=1e-3, warmup=2, eval_interval=4)

    def fresh() -> tuple[Regressor, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = Regressor()
        optimizer = torch.optim.AdamW(
            [
                {"params": model.body.parameters(), "lr": 1e-2},
                {"params": model.head.parameters(), "lr": 1e-1},
            ]
        )
        for group in optimizer.param_groups:
            group["peak_lr"] = group["lr"]
        return model, optimizer

    model, optimizer = fresh()
    run(model, optimizer, config, batch, progress=False)
    body, head = (g["lr"] for g in optimizer.param_groups)
    assert body == pytest.approx(lr_at(3, config)) and head == pytest.approx(10 * body)
    # 2 steps (warm-up: the same rates as in the 4-step run), then 2 more from that state:
    # the same weights as 4 at once
    half, half_opt = fresh()
    state = run(
        half, half_opt, LoopConfig(**{**config.__dict__, "steps": 2}), batch, progress=False
    )
    state = run(half, half_opt, config, batch, state=LoopState(step=state.step), progress=False)
    assert state.step == 4
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, half.state_dict()[name], msg=name)
