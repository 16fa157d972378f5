"""The Score tab's face picker and reference line (`talkface.app.picker`), from hand-made
results: every face the clip holds is offered with what tells them apart, the picker's value
becomes the Scorer's `face`, crops stay inside the frame, and the identity similarity says what
it is (and why it is missing)."""
from __future__ import annotations

import numpy as np
import pytest

from talkface.app import picker
from talkface.errors import TalkfaceError
from talkface.results import ScoreResult

TRACKS = [{"id": 0, "first": 0, "last": 49, "frames": 50, "height_px": 80.0, "frame": 25,
           "box": [10, 10, 50, 60]},
          {"id": 3, "first": 25, "last": 74, "frames": 50, "height_px": 120.0, "frame": 50,
           "box": [100, 20, 160, 100]}]


def result(tracks=TRACKS, scored=0, identity=None) -> ScoreResult:
    info = {"tracks": tracks, "scored_track": scored, "width": 200, "height": 120,
            "face_choice": "the face whose lips move with the speech"}
    return ScoreResult("clip.mp4", {}, (), {}, None, np.ones(75, bool), 25.0, info,
                       identity=identity or {})


def test_every_face_is_offered_with_what_tells_them_apart():
    choices = picker.face_choices(result())
    assert choices[0] == (picker.AUTO_LABEL, picker.AUTO)
    assert [v for _, v in choices[1:]] == ["0", "3"]
    assert choices[1][0] == "face 0 · 0.0-2.0 s · 80 px high · scored"
    assert choices[2][0] == "face 3 · 1.0-3.0 s · 120 px high · largest"
    assert "2 faces found; face 0 was scored" in picker.picker_note(result())
    assert picker.face_choices(None) == [(picker.AUTO_LABEL, picker.AUTO)]
    assert picker.picker_note(result(TRACKS[:1])).startswith("One face")


def test_the_pickers_value_is_the_scorers_face():
    assert picker.face_value(picker.AUTO) is None and picker.face_value(None) is None
    assert picker.face_value("3") == 3
    with pytest.raises(TalkfaceError, match="not a face"):
        picker.face_value("../etc")


def test_a_crop_stays_inside_the_frame():
    frame = np.zeros((60, 100, 3), np.uint8)
    # scaled by 0.5 and padded by a quarter of its size: (70, 30)-(130, 75), cut at the edges
    crop = picker._crop(frame, (160, 80, 240, 130), 0.5, 0.25)
    assert crop.shape == (60 - 30, 100 - 70, 3)
    assert picker._crop(frame, (500, 500, 600, 600), 1.0, 0.0) is frame  # nothing left: whole


def test_the_identity_line_says_what_it_is_and_when_it_is_missing():
    same = picker.identity_html(result(identity={"reference_similarity": 0.91,
                                                 "reference_same_person": True}))
    assert "(CSIM): 0.91" in same and "the same person" in same and "cosine" in same
    other = picker.identity_html(result(identity={"reference_similarity": 0.4,
                                                  "reference_same_person": False}))
    assert "not the same person" in other
    none = picker.identity_html(result(identity={"reference_similarity": None,
                                                 "reference_note": "no face found in the "
                                                                   "reference portrait"}))
    assert "not measured" in none and "no face found in the reference portrait" in none
    assert picker.identity_html(result(), asked=False) == ""
    assert "no identity embedding" in picker.identity_html(result())
