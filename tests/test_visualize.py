"""Retrieval contact sheets and tag response plots from a trained encoder's checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from storyline.deploy.cli import main
from storyline.extractor.encoder import encoder_from_checkpoint
from storyline.store import FeatureStore
from storyline.trainers import encoder_train as et
from storyline.trainers.visualize import TagScorer

from .trailer_frames import write_trailer_store

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(store url, checkpoint): a briefly trained encoder whose features, computed the
    extractor's way from the cached frames, are stored under the name ``enc``."""
    root = tmp_path_factory.mktemp("vis")
    url = str(root / "trailers.zarr")
    write_trailer_store(url, videos=8, shots=(4, 6), size=64, seed=3)  # extract needs >32
    config = et.EncoderTrainConfig(
        steps=2, batch_videos=2, shots_per_video=2, warmup=1, eval_interval=2, eval_videos=2
    )
    checkpoint = str(root / "enc.pt")
    et.train(et.TrailerSet.from_store(url, config), config=config, out=checkpoint, progress=False)
    encoder = encoder_from_checkpoint(checkpoint, name="enc", device="cpu")
    store = FeatureStore(url, mode="a")
    store.register_encoder("enc", encoder.id)
    for vid in store.video_ids():
        cache = store.frames(vid)[:]
        n, m = cache.shape[:2]
        feats = encoder.encode(cache.reshape(n * m, *cache.shape[2:])).reshape(n, m, -1).mean(1)
        writer = store.begin_video(vid, attrs={})
        writer.finish(
            shots=store.shots(vid),
            features=feats,
            encoder_name="enc",
            encoder_id=encoder.id,
            attrs={},
        )
    return url, checkpoint


def _png(path: Path) -> Image.Image:
    image = Image.open(path)
    image.load()
    assert image.format == "PNG"
    return image


def test_retrieve_writes_contact_sheet_and_json(trained: tuple[str, str], tmp_path: Path) -> None:
    url, checkpoint = trained
    out = tmp_path / "disc.png"
    assert (
        main(
            [
                "retrieve",
                "--store",
                url,
                "--checkpoint",
                checkpoint,
                "--encoder",
                "enc",
                "--tag",
                "disc",
                "--top",
                "6",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    image = _png(out)
    assert image.width > 400 and image.height > 300
    hits = json.loads(out.with_suffix(".json").read_text())["hits"]
    assert len(hits) == 6
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    # the best shot of the store, checked against the scorer directly
    scorer = TagScorer(checkpoint, FeatureStore(url, mode="r"), "enc")
    t = scorer.index("disc")
    best = max(
        (float(s), v, i)
        for v in scorer.store.video_ids()
        for i, s in enumerate(scorer.scores(v)[:, t])
    )
    assert (hits[0]["video"], hits[0]["shot"]) == (best[1], best[2])
    assert hits[0]["score"] == pytest.approx(best[0])


def test_response_plots_several_tags(trained: tuple[str, str], tmp_path: Path) -> None:
    url, checkpoint = trained
    out = tmp_path / "response.png"
    video = FeatureStore(url, mode="r").video_ids()[0]
    vocab = torch.load(checkpoint, weights_only=True)["vocabulary"]
    tags = ",".join([*vocab["genres"][:2], vocab["keywords"][0]])
    assert (
        main(
            [
                "response",
                "--store",
                url,
                "--checkpoint",
                checkpoint,
                "--encoder",
                "enc",
                "--video",
                video,
                "--tags",
                tags,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    image = np.asarray(_png(out).convert("RGB"))
    assert image.shape[1] == 1000
    # matplotlib's default colours of the three lines are on the figure
    for colour in ((31, 119, 180), (255, 127, 14), (44, 160, 44)):
        assert (np.abs(image.astype(int) - colour).sum(-1) < 30).any(), colour


def test_refusals_say_what_to_do(
    trained: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, checkpoint = trained
    base = ["--store", url, "--checkpoint", checkpoint, "--out", str(tmp_path / "x.png")]
    assert main(["retrieve", *base, "--encoder", "enc", "--tag", "romance"]) == 2
    assert "not in the checkpoint's vocabulary" in capsys.readouterr().err
    assert main(["retrieve", *base, "--encoder", "random", "--tag", "disc"]) == 2
    assert "only fits its own features" in capsys.readouterr().err
    renamed = tmp_path / "trailer33k.pt"
    shutil.copy(checkpoint, renamed)
    assert (
        main(
            [
                "response",
                "--store",
                url,
                "--checkpoint",
                str(renamed),
                "--video",
                "trailer000",
                "--tags",
                "disc",
                "--out",
                str(tmp_path / "x.png"),
            ]
        )
        == 2
    )
    assert "is not in store" in capsys.readouterr().err  # default name: the checkpoint stem
    assert not (tmp_path / "x.png").exists()


def test_retrieve_decodes_from_source_without_cache(
    trained: tuple[str, str], clip: tuple[Path, list[int], int], tmp_path: Path
) -> None:
    """A movie store extracted with the checkpoint and no --frames: frames come from video."""
    _, checkpoint = trained
    path, _, _ = clip
    movies = str(tmp_path / "movies.zarr")
    assert (
        main(["extract", str(path), "--store", movies, "--checkpoint", checkpoint, "--quiet"]) == 0
    )
    out = tmp_path / "movie.png"
    assert (
        main(
            [
                "retrieve",
                "--store",
                movies,
                "--checkpoint",
                checkpoint,
                "--tag",
                "square",
                "--top",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    hits = json.loads(out.with_suffix(".json").read_text())["hits"]
    assert len(hits) == 3 and hits[0]["seconds"] is not None
    image = np.asarray(_png(out).convert("RGB"))
    assert image.std() > 10  # decoded frames, not a blank sheet


def test_retrieve_searches_only_the_chosen_videos(
    trained: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store that also holds other videos (QA clips beside movies): --manifest and/or
    --prefix choose which videos' shots compete."""
    url, checkpoint = trained
    ids = FeatureStore(url, mode="r").video_ids(encoder="enc")
    manifest = tmp_path / "movies.csv"
    manifest.write_text("video,id\n" + "".join(f"{v}.mp4,{v}\n" for v in ids[:3]))
    base = [
        "retrieve",
        "--store",
        url,
        "--checkpoint",
        checkpoint,
        "--encoder",
        "enc",
        "--tag",
        "disc",
        "--top",
        "5",
    ]

    def searched(*extra: str) -> tuple[set[str], int]:
        out = tmp_path / "sel.png"
        assert main([*base, "--out", str(out), *extra]) == 0
        result = json.loads(out.with_suffix(".json").read_text())
        return {h["video"] for h in result["hits"]}, result["videos_searched"]

    videos, n = searched("--manifest", str(manifest))
    assert n == 3 and videos <= set(ids[:3])
    videos, n = searched("--prefix", ids[-1])
    assert n == 1 and videos == {ids[-1]}
    videos, n = searched("--manifest", str(manifest), "--prefix", ids[0], "--prefix", ids[-1])
    assert n == 1 and videos == {ids[0]}  # both: in the manifest and with a prefix
    assert searched()[1] == len(ids)  # default: every video with the encoder's features
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "none.png"), "--prefix", "movie-"]) == 2
    assert "check --manifest / --prefix" in capsys.readouterr().err
