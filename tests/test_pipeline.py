"""The one-pass pipeline on real encoded clips with known cuts."""

from __future__ import annotations

import numpy as np
import pytest

from storyline.extractor.pipeline import ExtractionSettings, extract_video
from storyline.extractor.shots import ShotBuffer, cuts_to_shots, sample_positions

from .conftest import TEST_INPUT_SIZE
from .media import make_clip


@pytest.mark.parametrize("detector", ["adaptive", "content"])
def test_shots_match_known_cuts_and_tile_the_video(clip, encoder, detector):
    path, cuts, frame_count = clip
    result = extract_video(str(path), encoder, ExtractionSettings(detector=detector))
    found = result.shots[1:, 0].tolist()
    assert len(found) == len(cuts), f"found {found}, want {cuts}"
    assert np.all(np.abs(np.array(found) - np.array(cuts)) <= 1)
    assert result.shots[0, 0] == 0 and result.shots[-1, 1] == frame_count
    assert np.array_equal(result.shots[1:, 0], result.shots[:-1, 1])  # no gap, no overlap
    assert result.meta.frame_count == frame_count


def test_every_shot_has_a_feature_and_different_shots_differ(clip, encoder):
    path, cuts, _ = clip
    result = extract_video(str(path), encoder)
    assert result.features.shape == (len(cuts) + 1, 1024)
    assert np.isfinite(result.features).all()
    unit = result.features / np.linalg.norm(result.features, axis=1, keepdims=True)
    cosine = unit @ unit.T
    off_diagonal = cosine[~np.eye(len(unit), dtype=bool)]
    assert off_diagonal.max() < 0.999, "visually different shots got the same feature"


def test_known_shots_skip_detection_and_give_identical_features(clip, encoder):
    path, _, _ = clip
    detected = extract_video(str(path), encoder)
    reused = extract_video(str(path), encoder, known_shots=detected.shots)
    assert np.array_equal(reused.shots, detected.shots)
    np.testing.assert_allclose(reused.features, detected.features, rtol=0, atol=1e-6)


def test_sampled_frames_are_the_centres_of_the_thirds(tmp_path, encoder):
    """A slow brightness ramp encodes each frame's index in its pixels."""
    frame_count = 300
    ramp = [np.full((64, 96, 3), 20 + i * 200 // frame_count, np.uint8) for i in range(frame_count)]
    from storyline.synth.video_writer import write_video

    write_video(tmp_path / "ramp.mp4", ramp)
    sampled: list[np.ndarray] = []
    settings = ExtractionSettings(buffer_frames=24)  # force thinning: 300 frames, 24 kept
    result = extract_video(str(tmp_path / "ramp.mp4"), encoder, settings, on_frames=sampled.append)
    assert result.shots.tolist() == [[0, frame_count]]
    frames = np.concatenate(sampled)
    assert frames.shape == (1, 3, TEST_INPUT_SIZE, TEST_INPUT_SIZE, 3)
    decoded_index = (frames[0].reshape(3, -1).mean(axis=1) - 20) * frame_count / 200
    grid = 24 - 7  # capacity less the detector's lag, kept whole
    assert np.all(np.abs(decoded_index - [50, 150, 250]) <= frame_count / grid + 4)


def test_shot_buffer_is_bounded_whatever_the_shot_length():
    buffer = ShotBuffer(capacity=32, tail=6)
    frame = np.zeros((4, 4, 3), np.uint8)
    for index in range(20_000):
        buffer.add(index, frame + index % 255)
        assert len(buffer) <= 32
    sampled = buffer.close(20_000, 3)
    assert sampled.shape == (3, 4, 4, 3)


def test_late_reported_cut_hands_the_newest_frames_to_the_next_shot():
    buffer = ShotBuffer(capacity=8, tail=4)
    for index in range(100):
        buffer.add(index, np.full((1, 1, 3), index, np.uint8))
    buffer.close(98, 3)  # cut reported 2 frames late
    last = buffer.close(100, 3)
    assert set(last.reshape(3, -1)[:, 0].tolist()) <= {98, 99}


def test_sample_positions_and_tiling():
    assert sample_positions(0, 30).tolist() == [5, 15, 25]
    assert sample_positions(10, 11).tolist() == [10, 10, 10]
    assert cuts_to_shots([5, 5, 0, 9], 12).tolist() == [[0, 5], [5, 9], [9, 12]]


def test_frame_counts_survive_a_long_single_shot(tmp_path, encoder):
    path = tmp_path / "long.mp4"
    make_clip(path, [400], seed=5)
    result = extract_video(str(path), encoder, ExtractionSettings(buffer_frames=12))
    assert result.shots.tolist() == [[0, 400]]
