"""One tag vocabulary rule and one meaning of "Score Average" for every tag model."""

from __future__ import annotations

import numpy as np
import torch

from storyline.trainers import encoder_train, tags
from storyline.trainers.tags import TagModel, TagsConfig, TagsTrainConfig, score_average
from storyline.trainers.vocab import TagVocab

VIDEOS = [
    {"genres": ["drama"], "keywords": ["love", "war", "ship"]},
    {"genres": ["comedy"], "keywords": ["love", "ship"]},
    {"genres": ["drama"], "keywords": ["love", "once"]},
]


def test_one_rule_for_the_tag_classifiers_and_the_encoder() -> None:
    vocab = TagVocab.from_videos(VIDEOS)
    # every genre; keywords of at least 2 videos (the default of both trainers)
    assert vocab == TagVocab(("comedy", "drama"), ("love", "ship"))
    assert TagsTrainConfig().min_keyword_videos == 2
    assert encoder_train.EncoderTrainConfig().min_keyword_videos == 2
    # at most max_keywords, the most frequent kept; outputs sorted by name
    assert TagVocab.from_videos(VIDEOS, max_keywords=1).keywords == ("love",)
    assert TagVocab.from_videos(VIDEOS, min_keyword_videos=1).keywords == (
        "love",
        "once",
        "ship",
        "war",
    )
    assert TagVocab.from_dict(vocab.to_dict()) == vocab
    assert vocab.encode({"genres": ["drama", "western"], "keywords": ["ship"]}).tolist() == [
        0,
        1,
        0,
        1,
    ]


def test_score_average_is_the_mean_of_per_shot_scores() -> None:
    torch.manual_seed(0)
    model = TagModel(TagsConfig(method="average", feature_dim=4, n_genres=2, n_keywords=1))
    model.eval()
    x = torch.randn(1, 5, 4) * 5
    mask = torch.tensor([[True, True, True, False, False]])
    per_shot = torch.sigmoid(model.classifier(x[:, :3]))  # features standardized by 0/1
    expected = per_shot.mean(1)
    assert torch.allclose(model(x, mask)[0], expected, atol=1e-6)
    # not the sigmoid of the mean logit (that is the classifier on the mean feature)
    assert not torch.allclose(expected, torch.sigmoid(model.classifier(x[:, :3]).mean(1)))
    # the encoder's validation and probe score videos with the same function
    assert encoder_train.score_average is tags.score_average
    logits = torch.from_numpy(np.array([[0.0, 10.0], [0.0, -10.0]], np.float32))
    assert torch.allclose(score_average(logits), torch.tensor([0.5, 0.5]), atol=1e-4)
