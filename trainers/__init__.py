"""Trainers on the feature store: next-shot prediction, tag classifiers, movie QA, report.

The main names are importable from here; they load lazily, so importing a light module of
this package (the synthetic data generator, say) does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainerError": "data",
    "ShotTable": "data",
    "QuestionConfig": "questions",
    "QuestionSet": "questions",
    "build_questions": "questions",
    "load_questions": "questions",
    "questions_from_store": "questions",
    "save_questions": "questions",
    "NextShotModel": "temporal",
    "TemporalConfig": "temporal",
    "TemporalData": "temporal",
    "TemporalTrainConfig": "temporal",
    "TagModel": "tags",
    "TagData": "tags",
    "TagsConfig": "tags",
    "TagsTrainConfig": "tags",
    "QAModel": "qa",
    "QAData": "qa",
    "QAConfig": "qa",
    "QATrainConfig": "qa",
    "read_movieqa": "qa",
    "build_results": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
