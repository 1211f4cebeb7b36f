"""The paper's result tables for every encoder in a store, as Markdown and JSON.

Table 2 (tag classification: recall@3 and MAP for genres and keywords, Score Average and
Feature + LSTM), Table 4 (movie QA accuracy) and Table 5 (next-shot prediction, in-movie
and cross-movie: the LSTM, the paper's LSTM and the cosine baseline). Each encoder is
trained and scored with the same seeds, splits and question sets, so its rows differ only
by its features. Beside each figure, a 95% bootstrap interval over the test questions (or
videos): what another test set of the same size could have shown.

Honest by construction: models train on the train split, keep their best validation pass,
and are scored once on the test split; nothing is chosen on the test split.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ..store import FeatureStore
from . import qa, tags, temporal
from .data import TrainerError
from .metrics import bootstrap_ci, chance_map, mean_average_precision, recall_at_k
from .questions import SETTINGS, QuestionConfig, list_questions, load_questions
from .questions import questions_from_store as build_questions

# Table 5's rows (report.json keys) -> temporal.MODELS: storyline's and the paper's
TEMPORAL_MODELS = {"lstm": "similarity", "lstm_paper": "paper"}


@dataclass(frozen=True)
class ReportConfig:
    """What the report trains and on which questions."""

    context: int = 8  # m of the question sets
    choices: int = 32  # n of the question sets
    seed: int = 0  # question sets, splits, training and bootstrap draws
    temporal: temporal.TemporalTrainConfig = field(default_factory=temporal.TemporalTrainConfig)
    tags: tags.TagsTrainConfig = field(default_factory=tags.TagsTrainConfig)
    qa: qa.QATrainConfig = field(default_factory=qa.QATrainConfig)
    encoders: tuple[str, ...] = ()  # empty: every encoder in the store
    draws: int = 1000  # bootstrap resamples per interval


@dataclass
class QAInputs:
    """A MovieQA file and its word vectors, for Table 4 (clips are read from the store)."""

    items: list[qa.QAItem]
    embed: Callable[[str], np.ndarray]


def _accuracy(hits: np.ndarray, config: ReportConfig) -> tuple[float, list[float]]:
    hits = hits.astype(np.float64)
    ci = bootstrap_ci(lambda i: hits[i].mean(), len(hits), draws=config.draws, seed=config.seed)
    return float(hits.mean()) if len(hits) else float("nan"), list(ci)


def _question_set(
    store: FeatureStore, qconf: QuestionConfig, only: list[str] | None, notes: list[str]
):
    """The saved set when it covers exactly the report's movies, else one built for it."""
    if qconf.name in list_questions(store):
        qset = load_questions(store, qconf.name)
        if only is None or set(qset.videos) <= set(only):
            return qset
    notes.append(f"{qconf.name}: built for this report (not saved in the store)")
    return build_questions(store, qconf, only=only)


def temporal_results(
    store: FeatureStore,
    encoder: str,
    config: ReportConfig,
    *,
    only: list[str] | None,
    notes: list[str],
    progress: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Table 5 for one encoder: one model of each kind per setting, trained on that
    setting's training questions (as the paper builds a training set per setting)."""
    out: dict[str, Any] = {}
    for setting in SETTINGS:
        qconf = QuestionConfig(
            setting=setting, context=config.context, choices=config.choices, seed=config.seed
        )
        try:
            qset = _question_set(store, qconf, only, notes)
            data = temporal.TemporalData.from_store(store, encoder, qset, progress=progress)
        except TrainerError as exc:
            notes.append(f"next-shot prediction, {setting}: {exc}")
            continue
        test = qset.indices("test")
        if not len(test):
            notes.append(f"next-shot prediction, {setting}: no test movies")
            continue
        row: dict[str, Any] = {
            "questions": int(len(test)),
            "train_questions": int(len(qset.indices("train"))),
        }
        for key, kind in TEMPORAL_MODELS.items():
            model_config = temporal.model_config(
                kind, context=config.context, feature_dim=data.table.dim
            )
            model, _ = temporal.train(
                data, model_config=model_config, train_config=config.temporal, progress=progress
            )
            hits = temporal.correct(model, data.table, data.rows, test)
            row[key], row[f"{key}_ci"] = _accuracy(hits["model"], config)
            row["baseline"], row["baseline_ci"] = _accuracy(hits["baseline"], config)
        log(f"{encoder} {setting}: {row}")
        out[setting] = row
    return out


def _tag_metrics(scores: np.ndarray, labels: np.ndarray, config: ReportConfig) -> dict:
    """recall@3 and MAP with their intervals over the test videos."""
    out: dict[str, Any] = {}
    n = len(labels)
    for name, metric in (
        ("recall@3", lambda s, y: recall_at_k(s, y, 3)),
        ("map", mean_average_precision),
    ):
        out[name] = metric(scores, labels) if labels.shape[1] else None
        out[f"{name}_ci"] = (
            list(
                bootstrap_ci(
                    lambda i, m=metric: m(scores[i], labels[i]),
                    n,
                    draws=config.draws,
                    seed=config.seed,
                )
            )
            if labels.shape[1]
            else None
        )
    return out


def tag_results(
    store: FeatureStore,
    encoder: str,
    config: ReportConfig,
    *,
    only: list[str] | None,
    notes: list[str],
    progress: bool,
    log: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, float]]:
    """Table 2 for one encoder, and the chance levels of its test videos."""
    out: dict[str, Any] = {}
    chance: dict[str, float] = {}
    try:
        data = tags.TagData.from_store(
            store, encoder, seed=config.seed, only=only, progress=progress
        )
    except TrainerError as exc:
        notes.append(f"tag classification: {exc}")
        return out, chance
    for method in tags.METHODS:
        model, metrics = tags.train(
            data, method=method, train_config=config.tags, progress=progress
        )
        videos = data.indices(metrics["split"])
        scores = tags.predict(model, data, videos, eval_shots=config.tags.eval_shots)
        labels = data.labels[videos].numpy()
        g = len(data.vocab.genres)
        out[method] = {"videos": int(len(videos)), "split": metrics["split"]}
        for name, cols in (("genres", slice(0, g)), ("keywords", slice(g, None))):
            out[method][name] = _tag_metrics(scores[:, cols], labels[:, cols], config)
            classes = labels[:, cols].shape[1]
            chance[f"{name}_recall@3"] = min(1.0, 3 / classes) if classes else float("nan")
            chance[f"{name}_map"] = chance_map(labels[:, cols]) if classes else float("nan")
        log(f"{encoder} tags {method}: {out[method]}")
    return out, chance


def qa_results(
    store: FeatureStore,
    encoder: str,
    inputs: QAInputs,
    config: ReportConfig,
    *,
    notes: list[str],
    progress: bool,
) -> dict[str, Any]:
    """Table 4 for one encoder: the QA head on its clip features."""
    try:
        data = qa.QAData.build(
            store, encoder, inputs.items, inputs.embed, seed=config.seed, progress=progress
        )
        model, metrics = qa.train(data, train_config=config.qa, progress=progress)
    except TrainerError as exc:
        notes.append(f"movie QA: {exc}")
        return {}
    hits = qa.correct(model, data, data.indices(metrics["split"]))
    accuracy, ci = _accuracy(hits, config)
    return {
        "accuracy": accuracy,
        "accuracy_ci": ci,
        "questions": int(len(hits)),
        "split": metrics["split"],
        "chance": metrics["chance"],
    }


def build_results(
    store: FeatureStore,
    config: ReportConfig = ReportConfig(),
    *,
    only: Iterable[str] | None = None,
    tags_store: FeatureStore | None = None,
    tags_only: Iterable[str] | None = None,
    qa_inputs: QAInputs | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Every number of the tables, per encoder: the content of ``report.json``.

    Next-shot prediction and QA read ``store``; tag classification reads ``tags_store``
    (default: the same store), e.g. held-out trailers, as in the paper's Table 2.
    """
    if not store.video_ids():
        raise TrainerError(
            f"store {store.url} has no complete videos: run `storyline extract` first"
        )
    encoders = list(config.encoders) or sorted(store.encoders())
    unknown = [e for e in encoders if e not in store.encoders()]
    if unknown:
        raise TrainerError(
            f"encoders {unknown} are not in {store.url} (it has {sorted(store.encoders())})"
        )
    only = list(only) if only is not None else None
    if tags_store is None:
        tags_store, tags_only = store, only
    tags_only = list(tags_only) if tags_only is not None else None
    log = (lambda s: print(s, file=sys.stderr)) if progress else (lambda s: None)
    results: dict[str, Any] = {
        "temporal": {},
        "tags": {},
        "qa": {},
        "notes": {},
        "chance": {"next_shot": 1 / config.choices},
    }
    for encoder in encoders:
        print(f"report: {encoder}", file=sys.stderr)
        notes: list[str] = []
        kw = {"notes": notes, "progress": progress}
        results["temporal"][encoder] = temporal_results(
            store, encoder, config, only=only, log=log, **kw
        )
        results["tags"][encoder], chance = tag_results(
            tags_store, encoder, config, only=tags_only, log=log, **kw
        )
        results["chance"].update(chance)
        if qa_inputs is not None:
            results["qa"][encoder] = qa_results(store, encoder, qa_inputs, config, **kw)
            if results["qa"][encoder]:
                results["chance"]["qa"] = results["qa"][encoder]["chance"]
        results["notes"][encoder] = notes
    results["config"] = {
        **asdict(replace(config, encoders=tuple(encoders))),
        "store": store.url,
        "tags_store": tags_store.url,
    }
    return results


def _fmt(x: float | None, ci: list[float] | None = None) -> str:
    if x is None or x != x:
        return "—"
    return f"{x:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def markdown(results: dict[str, Any]) -> str:
    """Tables 2, 4 and 5 as Markdown, one block of rows per encoder."""
    config, chance = results["config"], results["chance"]
    lines = [
        "Each figure: the test-split score [95% bootstrap interval over the test videos or "
        "questions].",
        "",
        "## Tag classification (paper Table 2)",
        "",
        "| Encoder | Method | Genres recall@3 | Genres MAP | Keywords recall@3 | Keywords MAP |",
        "|---|---|---|---|---|---|",
    ]
    scored_on = ""
    for encoder, res in results["tags"].items():
        for method, label in tags.METHODS.items():
            m = res.get(method)
            if m is None:
                lines.append(f"| {encoder} | {label} | — | — | — | — |")
                continue
            g, k = m["genres"], m["keywords"]
            scored_on = f"{m['videos']} {m['split']} videos of {config['tags_store']}"
            cells = [_fmt(d[x], d[f"{x}_ci"]) for d in (g, k) for x in ("recall@3", "map")]
            lines.append(f"| {encoder} | {label} | " + " | ".join(cells) + " |")
    if "genres_map" in chance:
        cells = [
            _fmt(chance.get(f"{n}_{x}"))
            for n in ("genres", "keywords")
            for x in ("recall@3", "map")
        ]
        lines.append("| — | chance | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Scored on {scored_on or 'no videos'}; {config['tags']['steps']} training "
        "steps; chance MAP is that of random rankings of the same videos.",
        "",
    ]

    if results["qa"]:
        lines += [
            "## Movie QA (paper Table 4)",
            "",
            "| Encoder | Accuracy | Questions |",
            "|---|---|---|",
        ]
        for encoder, res in results["qa"].items():
            if res:
                lines.append(
                    f"| {encoder} | {_fmt(res['accuracy'], res['accuracy_ci'])} | "
                    f"{res['questions']} |"
                )
        if "qa" in chance:
            lines.append(f"| chance | {_fmt(chance['qa'])} | |")
        lines.append("")

    lines += [
        "## Next-shot prediction (paper Table 5)",
        "",
        f"Accuracy choosing shot m+1 of {config['choices']} (m = {config['context']}), "
        "test movies. One model per setting, trained on that setting's questions.",
        "",
        "| Encoder | Method | In-movie | Cross-movie |",
        "|---|---|---|---|",
    ]
    questions: dict[str, int] = {}
    methods = {
        "baseline": "cosine to mean (baseline)",
        **{key: temporal.MODELS[kind] for key, kind in TEMPORAL_MODELS.items()},
    }
    for encoder, res in results["temporal"].items():
        for key, label in methods.items():
            cells = [_fmt(res[s][key], res[s][f"{key}_ci"]) if s in res else "—" for s in SETTINGS]
            lines.append(f"| {encoder} | {label} | " + " | ".join(cells) + " |")
        questions.update({s: res[s]["questions"] for s in SETTINGS if s in res})
    lines.append(f"| — | chance | {_fmt(chance['next_shot'])} | {_fmt(chance['next_shot'])} |")
    lines += [
        "",
        "Test questions: "
        + (", ".join(f"{s} {n}" for s, n in questions.items()) or "none")
        + f"; {config['temporal']['steps']} training steps, the best validation pass kept."
        " LSTM + similarity goes beyond the paper: a second scorer sees the candidate's "
        "cosine to each given shot and to their mean, and adds its score to the paper's.",
    ]
    notes = [f"- {enc}: {note}" for enc, ns in results["notes"].items() for note in ns]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"
