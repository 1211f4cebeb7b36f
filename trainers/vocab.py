"""The tag vocabulary: one rule for every model that scores tags.

The tag classifiers (``train tags``) and the encoder's tag head (``train encoder``) both
build their vocabulary here, from their training videos only: every genre; keywords
carried by at least ``min_keyword_videos`` training videos (a keyword seen once can be
memorised, not learnt), at most the ``max_keywords`` most frequent. Outputs are ordered
genres first, then keywords, each sorted by name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_KEYWORD_VIDEOS = 2  # keywords of fewer training videos are left out
MAX_KEYWORDS = 1000  # keep at most this many keywords (the most frequent)


@dataclass(frozen=True)
class TagVocab:
    """Tag names, in the order of a classifier's outputs (genres, then keywords)."""

    genres: tuple[str, ...]
    keywords: tuple[str, ...]

    @classmethod
    def from_videos(
        cls,
        tags: Iterable[Mapping[str, Any]],
        *,
        min_keyword_videos: int = MIN_KEYWORD_VIDEOS,
        max_keywords: int = MAX_KEYWORDS,
    ) -> TagVocab:
        """The vocabulary of these (training) videos' ``{"genres", "keywords"}`` tags."""
        tags = list(tags)
        genres = sorted({g for t in tags for g in t["genres"]})
        counts = Counter(k for t in tags for k in set(t["keywords"]))
        frequent = sorted(
            (k for k, n in counts.items() if n >= min_keyword_videos), key=lambda k: (-counts[k], k)
        )
        return cls(tuple(genres), tuple(sorted(frequent[:max_keywords])))

    @classmethod
    def from_dict(cls, data: Mapping[str, Iterable[str]]) -> TagVocab:
        return cls(tuple(data["genres"]), tuple(data["keywords"]))

    def to_dict(self) -> dict[str, list[str]]:
        """``{"genres": [...], "keywords": [...]}``, as checkpoints store it."""
        return {"genres": list(self.genres), "keywords": list(self.keywords)}

    def __len__(self) -> int:
        return len(self.genres) + len(self.keywords)

    def encode(self, tags: Mapping[str, Iterable[str]]) -> np.ndarray:
        """Multi-hot (n_genres + n_keywords,) float32; tags outside the vocabulary dropped."""
        y = np.zeros(len(self), dtype=np.float32)
        gi = {g: i for i, g in enumerate(self.genres)}
        ki = {k: len(self.genres) + i for i, k in enumerate(self.keywords)}
        for g in tags["genres"]:
            if g in gi:
                y[gi[g]] = 1
        for k in tags["keywords"]:
            if k in ki:
                y[ki[k]] = 1
        return y
