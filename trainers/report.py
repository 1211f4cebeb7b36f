"""The paper's result tables for every encoder in a store, as Markdown.

Table 2 (tag classification: recall@3 and MAP for genres and keywords, Score Average
and Feature + LSTM) and Table 5 (next-shot prediction accuracy, in-movie and
cross-movie, LSTM and cosine baseline). Each encoder is trained and scored with the
same seeds, splits and question sets, so its rows differ only by its features.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..store import FeatureStore
from . import tags, temporal
from .data import TrainerError
from .questions import SETTINGS, QuestionConfig, list_questions, load_questions
from .questions import questions_from_store as build_questions


@dataclass(frozen=True)
class ReportConfig:
    """What the report trains and on which questions."""

    context: int = 8  # m of the question sets
    choices: int = 32  # n of the question sets
    seed: int = 0  # question sets, splits and training
    temporal: temporal.TemporalTrainConfig = field(default_factory=temporal.TemporalTrainConfig)
    tags: tags.TagsTrainConfig = field(default_factory=tags.TagsTrainConfig)
    encoders: tuple[str, ...] = ()  # empty: every encoder in the store


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def encoder_results(
    store: FeatureStore, encoder: str, config: ReportConfig, *,
    only: Iterable[str] | None = None, progress: bool = True,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Train and score every model of the two tables on one encoder's features."""
    only = list(only) if only is not None else None
    out: dict[str, Any] = {"temporal": {}, "tags": {}, "notes": []}
    saved = set(list_questions(store))
    for setting in SETTINGS:
        qconf = QuestionConfig(setting=setting, context=config.context, choices=config.choices,
                               seed=config.seed)
        try:
            qset = load_questions(store, qconf.name) if qconf.name in saved else None
            if qset is not None and only is not None and not set(qset.videos) <= set(only):
                qset = None  # saved over other videos than the report is asked about
            if qset is None:
                qset = build_questions(store, qconf, only=only)
                out["notes"].append(f"{qconf.name}: built for this report (not saved in the "
                                    "store)")
            data = temporal.TemporalData.from_store(store, encoder, qset, progress=progress)
            model, _ = temporal.train(data, model_config=temporal.TemporalConfig(
                feature_dim=data.table.dim), train_config=config.temporal, progress=progress)
            out["temporal"][setting] = temporal.score_split(model, data)
            log(f"{encoder} {setting}: {out['temporal'][setting]}")
        except TrainerError as exc:
            out["notes"].append(f"next-shot prediction, {setting}: {exc}")
    try:
        data = tags.TagData.from_store(store, encoder, seed=config.seed, only=only,
                                       progress=progress)
        for method in tags.METHODS:
            _, metrics = tags.train(data, method=method, train_config=config.tags,
                                    progress=progress)
            out["tags"][method] = metrics
            log(f"{encoder} tags {method}: {metrics}")
    except TrainerError as exc:
        out["notes"].append(f"tag classification: {exc}")
    return out


def markdown(results: dict[str, dict[str, Any]], config: ReportConfig) -> str:
    """Tables 2 and 5 as Markdown, one block of rows per encoder."""
    lines = [
        "## Tag classification (paper Table 2)",
        "",
        "| Encoder | Method | Genres recall@3 | Genres MAP | Keywords recall@3 | Keywords MAP |",
        "|---|---|---|---|---|---|",
    ]
    chance: dict[str, float | None] = {}
    scored_on = ""
    for encoder, res in results.items():
        for method, label in tags.METHODS.items():
            m = res["tags"].get(method)
            if m is None:
                lines.append(f"| {encoder} | {label} | — | — | — | — |")
                continue
            g, k = m["genres"], m["keywords"]
            chance = {"genres": g["chance_recall@3"], "keywords": k["chance_recall@3"],
                      "genres_map": g.get("chance_map"), "keywords_map": k.get("chance_map")}
            scored_on = f"{m['videos']} {m['split']} videos"
            lines.append(f"| {encoder} | {label} | {_fmt(g['recall@3'])} | {_fmt(g['map'])} | "
                         f"{_fmt(k['recall@3'])} | {_fmt(k['map'])} |")
    if chance:
        lines.append(f"| — | chance | {_fmt(chance['genres'])} | {_fmt(chance['genres_map'])} | "
                     f"{_fmt(chance['keywords'])} | {_fmt(chance['keywords_map'])} |")
    lines += ["", f"Scored on {scored_on or 'no videos'}; {config.tags.steps} training steps; "
              "chance MAP is that of random rankings of the same videos.", "",
              "## Next-shot prediction (paper Table 5)", "",
              f"Accuracy choosing shot m+1 of {config.choices} (m = {config.context}), test "
              "movies.", "",
              "| Encoder | Method | In-movie | Cross-movie |", "|---|---|---|---|"]
    questions: dict[str, int] = {}
    for encoder, res in results.items():
        t = res["temporal"]
        row_base = [t[s]["baseline_accuracy"] if s in t else None for s in SETTINGS]
        row_lstm = [t[s]["accuracy"] if s in t else None for s in SETTINGS]
        questions.update({s: t[s]["questions"] for s in SETTINGS if s in t})
        lines.append(f"| {encoder} | cosine to mean (baseline) | "
                     + " | ".join(_fmt(x) for x in row_base) + " |")
        lines.append(f"| {encoder} | LSTM | " + " | ".join(_fmt(x) for x in row_lstm) + " |")
    lines.append(f"| — | chance | {_fmt(1 / config.choices)} | {_fmt(1 / config.choices)} |")
    lines += ["", "Test questions: " + (", ".join(f"{s} {n}" for s, n in questions.items())
                                        or "none") + f"; {config.temporal.steps} training steps."]
    notes = [f"- {enc}: {note}" for enc, res in results.items() for note in res["notes"]]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"


def build_report(store: FeatureStore, config: ReportConfig = ReportConfig(), *,
                 only: Iterable[str] | None = None, progress: bool = True) -> str:
    """Markdown tables for the chosen (default: all) encoders of a store."""
    if not store.video_ids():
        raise TrainerError(f"store {store.url} has no complete videos: run `storyline extract` "
                           "first")
    encoders = list(config.encoders) or sorted(store.encoders())
    unknown = [e for e in encoders if e not in store.encoders()]
    if unknown:
        raise TrainerError(f"encoders {unknown} are not in {store.url} (it has "
                           f"{sorted(store.encoders())})")
    results = {}
    for encoder in encoders:
        print(f"report: {encoder}", file=sys.stderr)
        results[encoder] = encoder_results(store, encoder, config, only=only, progress=progress)
    return markdown(results, config)
