"""`storyline questions | train temporal|tags|qa | eval temporal | report`.

Every train/eval command shows progress on stderr and prints its metrics as one JSON
object on the last line of stdout. Bad input ends with a one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..extractor.manifest import ManifestError, read_manifest
from ..store import FeatureStore, StoreError
from . import qa, tags, temporal
from .data import TrainerError, check_encoder, open_store
from .questions import (
    SETTINGS,
    QuestionConfig,
    list_questions,
    load_questions,
    questions_from_store,
    save_questions,
)
from .report import QAInputs, ReportConfig, build_results, markdown

EXIT_OK, EXIT_USAGE = 0, 2
Handler = Callable[[argparse.Namespace], int]


def _clean(obj: Any) -> Any:
    """JSON-safe metrics: NaN (a metric with nothing to average) becomes null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def emit(metrics: dict[str, Any]) -> None:
    """The command's result: one JSON object, the last line of stdout."""
    print(json.dumps(_clean(metrics)), flush=True)


def _guarded(name: str, func: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        if getattr(args, "threads", None):
            torch.set_num_threads(args.threads)
        try:
            return func(args)
        except (TrainerError, StoreError, ManifestError) as exc:
            print(f"storyline {name}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE

    return run


def _note(args: argparse.Namespace) -> Callable[[str], None]:
    quiet = getattr(args, "quiet", False)
    return (lambda s: None) if quiet else (lambda s: print(s, file=sys.stderr))


def _manifest_ids(path: str | None) -> list[str] | None:
    return None if path is None else [e.id for e in read_manifest(path)]


def _encoder(store: FeatureStore, name: str | None) -> str:
    """The named encoder, or the store's only one, checked against the store."""
    if not name:
        names = sorted(store.encoders())
        if len(names) > 1:
            raise TrainerError(f"store {store.url} holds encoders {names}: pick one with --encoder")
        name = names[0] if names else ""
    check_encoder(store, name)
    return name


def _question_config(args: argparse.Namespace, setting: str) -> QuestionConfig:
    return QuestionConfig(
        setting=setting, context=args.context, choices=args.choices, seed=args.seed
    )


def _saved_questions(store: FeatureStore, name: str, config: QuestionConfig | None) -> Any:
    if name not in list_questions(store) and config is not None:
        raise TrainerError(
            f"no question set {name!r} in {store.url}: run `storyline questions --store "
            f"{store.url} --setting {config.setting} --context {config.context} --choices "
            f"{config.choices} --seed {config.seed}` first"
        )
    return load_questions(store, name)


# ----------------------------------------------------------------------------- commands


def cmd_questions(args: argparse.Namespace) -> int:
    try:
        store = FeatureStore(args.store, mode="a")
    except StoreError as exc:
        raise TrainerError(str(exc)) from exc
    note = _note(args)
    settings = SETTINGS if args.setting == "both" else (args.setting,)
    result: dict[str, Any] = {"store": args.store, "sets": {}}
    for setting in settings:
        config = QuestionConfig(
            setting=setting,
            context=args.context,
            choices=args.choices,
            seed=args.seed,
            stride=args.stride,
            max_per_movie=args.max_per_movie,
        )
        qset = questions_from_store(store, config, only=_manifest_ids(args.manifest))
        save_questions(store, qset)
        if qset.skipped:
            shown = ", ".join(f"{v} ({n})" for v, n in list(qset.skipped.items())[:5])
            note(
                f"{qset.name}: skipped {len(qset.skipped)} movies too short for a question "
                f"(shots in brackets): {shown}{' ...' if len(qset.skipped) > 5 else ''}"
            )
        if qset.repeated:
            note(
                f"{qset.name}: {qset.repeated} movies have fewer than {config.choices - 1} "
                "shots to draw distractors from; their distractors repeat"
            )
        result["sets"][qset.name] = {
            "setting": setting,
            "questions": qset.counts(),
            "movies": qset.movie_counts(),
            "skipped_movies": len(qset.skipped),
            "repeated_distractor_movies": qset.repeated,
        }
    emit(result)
    return EXIT_OK


def cmd_train_temporal(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    encoder = _encoder(store, args.encoder)
    if args.questions:
        qset = _saved_questions(store, args.questions, None)
    else:
        config = _question_config(args, args.setting)
        qset = _saved_questions(store, config.name, config)
    data = temporal.TemporalData.from_store(store, encoder, qset, progress=not args.quiet)
    model_config = temporal.model_config(
        args.model, context=qset.config.context, feature_dim=data.table.dim, hidden=args.hidden
    )
    train_config = temporal.TemporalTrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        eval_interval=args.eval_interval,
    )
    _, metrics = temporal.train(
        data,
        model_config=model_config,
        train_config=train_config,
        out=args.out,
        resume=args.resume,
        progress=not args.quiet,
        log=_note(args),
    )
    emit({**metrics, "encoder": encoder, "checkpoint": args.out})
    return EXIT_OK


def cmd_eval_temporal(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    encoder = _encoder(store, args.encoder)
    model, ckpt = temporal.load_model(args.checkpoint, encoder, check_encoder(store, encoder))
    if args.questions:
        qset = _saved_questions(store, args.questions, None)
    else:
        config = temporal.question_config_for(
            ckpt, args.setting, seed=args.seed, choices=args.choices
        )
        qset = _saved_questions(store, config.name, config)
    if qset.config.context != ckpt["question_config"]["context"]:
        _note(args)(
            f"note: {qset.name} gives {qset.config.context} shots; the model was "
            f"trained on {ckpt['question_config']['context']}"
        )
    data = temporal.TemporalData.from_store(store, encoder, qset, progress=not args.quiet)
    emit(temporal.score_split(model, data, split=args.split))
    return EXIT_OK


def cmd_train_tags(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    encoder = _encoder(store, args.encoder)
    train_config = tags.TagsTrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        eval_interval=args.eval_interval,
        min_keyword_videos=args.min_keyword_videos,
    )
    data = tags.TagData.from_store(
        store,
        encoder,
        seed=args.seed,
        only=_manifest_ids(args.manifest),
        min_keyword_videos=args.min_keyword_videos,
        progress=not args.quiet,
    )
    _, metrics = tags.train(
        data,
        method=args.method,
        hidden=args.hidden,
        train_config=train_config,
        out=args.out,
        resume=args.resume,
        progress=not args.quiet,
        log=_note(args),
    )
    emit({**metrics, "checkpoint": args.out})
    return EXIT_OK


def cmd_train_qa(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    encoder = _encoder(store, args.encoder)
    items = qa.read_movieqa(args.qa)
    embed = qa.TextEmbedder(args.word_vectors, limit=args.vector_limit)
    data = qa.QAData.build(store, encoder, items, embed, seed=args.seed, progress=not args.quiet)
    if data.missing_clips:
        shown = ", ".join(data.missing_clips[:3])
        _note(args)(
            f"{len(data.missing_clips)} of {data.report['clips']} clips named in "
            f"{args.qa} are not in the store with features of {encoder!r} (e.g. "
            f"{shown}); {data.report['clips_all_missing']} questions lost every clip"
        )
    train_config = qa.QATrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        eval_interval=args.eval_interval,
    )
    _, metrics = qa.train(
        data,
        train_config=train_config,
        out=args.out,
        resume=args.resume,
        progress=not args.quiet,
        log=_note(args),
    )
    emit({**metrics, "unknown_texts": embed.unknown, "checkpoint": args.out})
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    config = ReportConfig(
        context=args.context,
        choices=args.choices,
        seed=args.seed,
        temporal=temporal.TemporalTrainConfig(steps=args.steps, seed=args.seed),
        tags=tags.TagsTrainConfig(steps=args.tag_steps, seed=args.seed),
        qa=qa.QATrainConfig(steps=args.qa_steps, seed=args.seed),
        encoders=tuple(args.encoders.split(",")) if args.encoders else (),
    )
    qa_inputs = None
    if args.qa:
        if not args.word_vectors:
            raise TrainerError("--qa needs --word-vectors (word2vec vectors, .bin or text)")
        qa_inputs = QAInputs(qa.read_movieqa(args.qa), qa.TextEmbedder(args.word_vectors))
    results = build_results(
        store,
        config,
        only=_manifest_ids(args.manifest),
        tags_store=open_store(args.tags_store) if args.tags_store else None,
        tags_only=_manifest_ids(args.tags_manifest),
        qa_inputs=qa_inputs,
        progress=not args.quiet,
    )
    text = markdown(results)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        out.with_suffix(".json").write_text(
            json.dumps(_clean(results), indent=1) + "\n", encoding="utf-8"
        )
        print(f"wrote {out} and {out.with_suffix('.json')}", file=sys.stderr)
    print(text, end="")
    return EXIT_OK


# ----------------------------------------------------------------------------- parsers


def _common(p: argparse.ArgumentParser, *, encoder: bool = True) -> None:
    p.add_argument("--store", required=True, help="Zarr store: local path or fsspec URL")
    if encoder:
        p.add_argument("--encoder", help="encoder name in the store (default: its only one)")
    p.add_argument("--seed", type=int, default=0, help="seed of splits, questions and training")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or notes")


def _question_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--context", type=int, default=QuestionConfig.context, help="m: shots given (default 8)"
    )
    p.add_argument(
        "--choices",
        type=int,
        default=QuestionConfig.choices,
        help="n: 1 true + n-1 distractors (default 32)",
    )


def _training_args(
    p: argparse.ArgumentParser, *, steps: int, batch_size: int, lr: float, eval_interval: int
) -> None:
    p.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from --out: a checkpoint of this model and encoder; a "
        "missing file starts fresh, any other file is refused",
    )
    p.add_argument("--steps", type=int, default=steps, help=f"optimizer steps (default {steps})")
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr, help="peak learning rate")
    p.add_argument(
        "--eval-interval",
        type=int,
        default=eval_interval,
        help="steps between validation passes and checkpoint saves",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "questions",
        help="build next-shot question sets into a store",
        description="Draw next-shot questions (m given shots, 1 true + "
        "n-1 distractors) from a store's movies and save them in it.",
    )
    _common(p, encoder=False)
    _question_args(p)
    p.add_argument(
        "--setting",
        choices=[*SETTINGS, "both"],
        default="both",
        help="where distractors come from (default both)",
    )
    p.add_argument("--stride", type=int, default=1, help="a question every stride-th shot")
    p.add_argument("--max-per-movie", type=int, default=0, help="cap per movie (0: none)")
    p.add_argument("--manifest", help="only the videos of this manifest (e.g. movies.csv)")
    p.set_defaults(func=_guarded("questions", cmd_questions))

    train = subparsers.add_parser("train", help="train temporal, tag or QA models on a store")
    models = train.add_subparsers(dest="model", required=True, metavar="MODEL")
    importlib.import_module("storyline.trainers.encoder_commands").add_train_encoder(models)
    tt = temporal.TemporalTrainConfig()
    p = models.add_parser("temporal", help="next-shot prediction LSTM")
    _common(p)
    _question_args(p)
    p.add_argument("--setting", choices=SETTINGS, default="in-movie")
    p.add_argument("--questions", help="question set name (default: from the options above)")
    p.add_argument("--hidden", type=int, default=temporal.TemporalConfig.hidden)
    p.add_argument(
        "--model",
        choices=list(temporal.MODELS),
        default="similarity",
        help="similarity: the paper's scorer joined by a scorer of the candidate's "
        "similarity to the given shots (default); paper: the paper's model alone",
    )
    _training_args(
        p, steps=tt.steps, batch_size=tt.batch_size, lr=tt.lr, eval_interval=tt.eval_interval
    )
    p.set_defaults(func=_guarded("train temporal", cmd_train_temporal))

    tg = tags.TagsTrainConfig()
    p = models.add_parser("tags", help="genre and keyword classifiers")
    _common(p)
    p.add_argument(
        "--method",
        choices=list(tags.METHODS),
        default="average",
        help="average: Score Average; lstm: Feature + LSTM",
    )
    p.add_argument("--hidden", type=int, default=tags.TagsConfig.hidden)
    p.add_argument(
        "--min-keyword-videos",
        "--min-keyword-count",
        type=int,
        default=tg.min_keyword_videos,
        dest="min_keyword_videos",
        help="keywords of fewer training videos are left out (default "
        f"{tg.min_keyword_videos}, as for the encoder)",
    )
    p.add_argument("--manifest", help="only the videos of this manifest")
    _training_args(
        p, steps=tg.steps, batch_size=tg.batch_size, lr=tg.lr, eval_interval=tg.eval_interval
    )
    p.set_defaults(func=_guarded("train tags", cmd_train_tags))

    tq = qa.QATrainConfig()
    p = models.add_parser("qa", help="MovieQA answer scoring on clip features")
    _common(p)
    p.add_argument("--qa", required=True, help="MovieQA qa.json")
    p.add_argument("--word-vectors", required=True, help="word2vec vectors (.bin or text)")
    p.add_argument("--vector-limit", type=int, help="read only the first N word vectors")
    _training_args(
        p, steps=tq.steps, batch_size=tq.batch_size, lr=tq.lr, eval_interval=tq.eval_interval
    )
    p.set_defaults(func=_guarded("train qa", cmd_train_qa))

    evaluate = subparsers.add_parser("eval", help="score a trained model on a store")
    models = evaluate.add_subparsers(dest="model", required=True, metavar="MODEL")
    p = models.add_parser("temporal", help="next-shot prediction accuracy on test movies")
    _common(p)
    p.add_argument("--checkpoint", required=True, help="from `storyline train temporal`")
    p.add_argument("--setting", choices=SETTINGS, default="in-movie")
    p.add_argument("--questions", help="question set name (default: the checkpoint's m, n)")
    p.add_argument("--choices", type=int, help="n (default: the checkpoint's)")
    p.add_argument("--split", choices=["train", "val", "test"], default="test")
    p.set_defaults(func=_guarded("eval temporal", cmd_eval_temporal), seed=None)

    tt_default = temporal.TemporalTrainConfig()
    p = subparsers.add_parser(
        "report",
        help="the paper's Tables 2, 4 and 5 (Markdown, JSON)",
        description="Train and score tag classifiers, the QA head and "
        "the next-shot models for every encoder in a store; print "
        "Markdown tables with 95%% bootstrap intervals.",
    )
    _common(p, encoder=False)
    _question_args(p)
    p.add_argument("--encoders", help="comma-separated encoder names (default: all)")
    p.add_argument("--manifest", help="only the videos of this manifest (e.g. movies.csv)")
    p.add_argument(
        "--tags-store",
        help="store whose videos the tag table is scored on (e.g. the trailers'; default: --store)",
    )
    p.add_argument("--tags-manifest", help="only these videos of the tags store")
    p.add_argument("--qa", help="MovieQA qa.json: adds the QA table (clips in --store)")
    p.add_argument("--word-vectors", help="word2vec vectors for --qa (.bin or text)")
    p.add_argument("--steps", type=int, default=tt_default.steps, help="temporal steps")
    p.add_argument("--tag-steps", type=int, default=tg.steps, help="tag classifier steps")
    p.add_argument("--qa-steps", type=int, default=tq.steps, help="QA head steps")
    p.add_argument(
        "--out",
        help="also write the Markdown here, and the numbers as JSON "
        "beside it (report.md -> report.json)",
    )
    p.set_defaults(func=_guarded("report", cmd_report))
