"""`storyline encoder train|import-bninception`, `storyline retrieve`, `storyline response`.

`train encoder` (the issue's spelling) is the same parser, added to the `train` family by
:func:`add_train_encoder` when that family exists.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from ..extractor.manifest import ManifestError, read_manifest
from ..extractor.models.bninception_import import caffe_weights
from ..extractor.weights import EncoderError, load_file, save_weights
from ..store import StoreError
from .data import TrainerError
from .encoder_train import EncoderTrainConfig, TrailerSet, train
from .visualize import open_scorer, plot_response, select_videos, write_retrieval

EXIT_OK, EXIT_ERROR = 0, 2
_ERRORS = (TrainerError, EncoderError, StoreError, ManifestError, ValueError)
_DEFAULTS = EncoderTrainConfig()


def _fail(command: str, exc: Exception) -> int:
    print(f"storyline {command}: error: {exc}", file=sys.stderr)
    return EXIT_ERROR


# ------------------------------------------------------------------------ encoder train
def add_train_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        required=True,
        help="trailer store with cached frames (storyline extract --frames)",
    )
    parser.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    parser.add_argument(
        "--init",
        help="start from these weights (import-bninception's output "
        "or an earlier encoder checkpoint); default: seeded random",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from --out (an encoder checkpoint of the same vocabulary "
        "and frame size); a missing file starts fresh, any other is refused",
    )
    parser.add_argument("--device", help="torch device (default: cuda if any)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    for f in fields(EncoderTrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(
                flag,
                type=lambda s: s.lower() in ("1", "true", "yes"),
                default=f.default,
                metavar="BOOL",
                help=f"default {f.default}",
            )
        else:
            kind = type(f.default)
            parser.add_argument(flag, type=kind, default=f.default, help=f"default {f.default}")
    parser.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    config = EncoderTrainConfig(
        **{f.name: getattr(args, f.name) for f in fields(EncoderTrainConfig)}
    )
    try:
        data = TrailerSet.from_store(args.store, config)
        for reason, ids in data.skipped.items():
            print(f"skipped {len(ids)} videos ({reason})", file=sys.stderr)
        print(
            f"training on {len(data.ids('train'))} trailers, validating on "
            f"{len(data.ids('val') or data.ids('test'))}; {len(data.genres)} genres, "
            f"{len(data.keywords)} keywords; frames {data.input_size}px",
            file=sys.stderr,
        )
        _, result = train(
            data,
            config=config,
            out=args.out,
            init=args.init,
            resume=args.resume,
            device=args.device,
            progress=not args.quiet,
            log=lambda line: print(line, file=sys.stderr),
        )
    except _ERRORS as exc:
        return _fail("train encoder", exc)
    print(json.dumps(result, indent=2, default=float))
    print(f"checkpoint: {args.out} (extract with --checkpoint {args.out})", file=sys.stderr)
    return EXIT_OK


# ------------------------------------------------------------------ import-bninception
def run_import(args: argparse.Namespace) -> int:
    """Caffe/TSN ImageNet BN-Inception file -> a storyline encoder file with its
    preprocessing (BGR, 0-255, mean subtraction), loadable by extract and --init."""
    try:
        raw = load_file(args.file)
        if not isinstance(raw, dict):
            raise EncoderError(f"{args.file} holds a {type(raw).__name__}, not a state dict")
        weights = caffe_weights(raw)
        ident = save_weights(args.out, weights, kind="bninception-imagenet", source=str(args.file))
        preprocessing = weights.preprocessing
    except _ERRORS as exc:
        return _fail("encoder import-bninception", exc)
    print(
        f"{args.out}: BN-Inception ImageNet weights, encoder id {ident}, preprocessing "
        f"{preprocessing.channel_order} 0-{preprocessing.value_scale:g} mean "
        f"{list(preprocessing.mean)}; use with `storyline train encoder --init {args.out}` "
        f"or `storyline extract --checkpoint {args.out}`"
    )
    return EXIT_OK


# ------------------------------------------------------------------ retrieve / response
def run_retrieve(args: argparse.Namespace) -> int:
    try:
        scorer = open_scorer(args.store, args.checkpoint, args.encoder)
        manifest = None if args.manifest is None else [e.id for e in read_manifest(args.manifest)]
        videos = select_videos(scorer, manifest=manifest, prefixes=args.prefix or ())
        png, json_path, hits = write_retrieval(
            scorer, args.tag, args.out, top=args.top, json_out=args.json, videos=videos
        )
    except _ERRORS as exc:
        return _fail("retrieve", exc)
    for h in hits:
        print(f"{h.score:.3f}  {h.video}  shot {h.shot}  frames [{h.start}, {h.end})")
    print(f"wrote {png} and {json_path} (searched {len(videos)} videos)", file=sys.stderr)
    return EXIT_OK


def run_response(args: argparse.Namespace) -> int:
    tags = [t.strip() for t in args.tags.split(",") if t.strip()]
    try:
        scorer = open_scorer(args.store, args.checkpoint, args.encoder)
        png = plot_response(scorer, args.video, tags, args.out)
    except _ERRORS as exc:
        return _fail("response", exc)
    print(f"wrote {png}", file=sys.stderr)
    return EXIT_OK


def _scorer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="store with the trained encoder's features")
    parser.add_argument("--checkpoint", required=True, help="encoder checkpoint (train encoder)")
    parser.add_argument("--encoder", help="features' name in the store (default: checkpoint stem)")
    parser.add_argument("--out", required=True, help="PNG to write")


def add_train_encoder(train_subparsers: argparse._SubParsersAction) -> None:
    """`storyline train encoder`: the same command, for the `train` family."""
    add_train_options(
        train_subparsers.add_parser(
            "encoder", help="train the BN-Inception shot encoder on trailers' cached frames"
        )
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    encoder = subparsers.add_parser("encoder", help="train or import the shot encoder")
    sub = encoder.add_subparsers(dest="encoder_command", required=True, metavar="COMMAND")
    add_train_options(
        sub.add_parser(
            "train", help="train the BN-Inception shot encoder on trailers' cached frames"
        )
    )
    imp = sub.add_parser(
        "import-bninception", help="convert the Caffe ImageNet BN-Inception weights (.pth)"
    )
    imp.add_argument("file", help="bn_inception-52deb4733.pth (pretrainedmodels / TSN)")
    imp.add_argument("--out", required=True, help="storyline encoder file to write")
    imp.set_defaults(func=run_import)

    retrieve = subparsers.add_parser(
        "retrieve", help="contact sheet (PNG + JSON) of the shots that respond most to a tag"
    )
    _scorer_options(retrieve)
    retrieve.add_argument("--tag", required=True, help="a genre or keyword of the checkpoint")
    retrieve.add_argument("--top", type=int, default=16, help="shots to show (default 16)")
    retrieve.add_argument("--json", help="JSON to write (default: --out with .json)")
    retrieve.add_argument("--manifest", help="only the videos of this manifest (e.g. movies.csv)")
    retrieve.add_argument(
        "--prefix",
        action="append",
        metavar="ID_PREFIX",
        help="only videos whose store id starts with this (repeatable)",
    )
    retrieve.set_defaults(func=run_retrieve)

    response = subparsers.add_parser(
        "response", help="plot tags' responses along a movie's shots (PNG)"
    )
    _scorer_options(response)
    response.add_argument("--video", required=True, help="video id in the store")
    response.add_argument("--tags", required=True, help="comma-separated tags")
    response.set_defaults(func=run_response)
