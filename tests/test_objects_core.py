"""The objects table: bad boxes are reported with their reason and never stop a run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import dataexplore as dx
from dataexplore.core.errors import SourceError
from dataexplore.core.objects import Objects
from dataexplore.core.samples import Samples


@pytest.fixture
def images():
    return dx.load(np.zeros((3, 40, 60), np.uint8))  # ids "0".."2", 60 wide, 40 high


def _boxes(rows):
    return pd.DataFrame(rows, columns=["image_id", "x", "y", "w", "h", "label", "score", "kind"])


def test_every_kind_of_bad_box_is_set_aside_with_its_reason_and_the_good_ones_load(images):
    obj = Objects(_boxes([
        ["0", 10, 5, 20, 10, "cat", np.nan, "ground_truth"],      # fine
        ["0", np.nan, 5, 20, 10, "cat", np.nan, "ground_truth"],  # NaN
        ["0", 10, 5, 0, 10, "cat", np.nan, "ground_truth"],       # zero width
        ["9", 10, 5, 20, 10, "cat", np.nan, "ground_truth"],      # unknown image
        ["1", 70, 5, 20, 10, "dog", np.nan, "ground_truth"],      # right of the image
        ["1", 50, -5, 20, 10, "dog", 0.9, "prediction"],          # past the corner: kept as it is
        ["2", 1, 1, 5, 5, "dog", np.nan, "prediction"],           # prediction without a score
        ["2", 1, 1, 5, 5, "dog", 1.7, "prediction"],              # score outside 0..1
        ["2", 2, 2, 5, 5, "dog", 0.4, "prediction"],              # fine
    ]), images)
    assert len(obj) == 3
    assert obj.table["image_id"].tolist() == ["0", "1", "2"]
    past = obj.table.iloc[1]  # scored by evaluation tools as given: not clipped
    assert (past["x"], past["y"], past["w"], past["h"]) == (50, -5, 20, 10)
    assert obj.problems["reason"].tolist() == [
        "not a number", "zero or negative size", "unknown image", "outside the image",
        "extends past the image", "prediction without a score", "prediction without a score"]
    assert obj.problems["action"].tolist() == ["dropped"] * 4 + ["kept"] + ["dropped"] * 2
    assert "5 problem boxes" not in repr(obj) and "7 problem boxes" in repr(obj)


def test_ground_truth_and_predictions_split_and_combine_over_the_same_images(images):
    gt = Objects(_boxes([["0", 1, 1, 5, 5, "cat", np.nan, "ground_truth"]]), images)
    pred = Objects(_boxes([["0", 2, 1, 5, 5, "cat", 0.8, "prediction"],
                           ["1", 2, 1, 5, 5, "dog", 0.3, "prediction"]]), images)
    both = Objects.concat([gt, pred])
    assert len(both.ground_truth()) == 1 and len(both.predictions()) == 2
    assert both.labels == ["cat", "dog"]
    assert len(both.in_image("0")) == 2
    assert both.boxes().shape == (3, 4)
    other = dx.load(np.zeros((1, 40, 60), np.uint8))
    with pytest.raises(SourceError, match="same images"):
        Objects.concat([gt, Objects(_boxes([["0", 1, 1, 2, 2, "cat", np.nan, "ground_truth"]]), other)])


def test_one_clear_error_for_tables_that_cannot_be_objects(images):
    with pytest.raises(SourceError, match="columns"):
        Objects(pd.DataFrame({"image_id": ["0"], "x": [1]}), images)
    files = Samples(pd.DataFrame({"id": ["a"], "filepath": ["a.png"]}))
    with pytest.raises(SourceError, match="'width' and 'height'"):
        Objects(_boxes([["a", 1, 1, 2, 2, "cat", np.nan, "ground_truth"]]), files)
    twice = _boxes([["0", 1, 1, 2, 2, "cat", np.nan, "ground_truth"]] * 2).assign(id="same")
    with pytest.raises(SourceError, match="duplicate object id 'same'"):
        Objects(twice, images)
    with pytest.raises(SourceError, match="kind must be"):
        Objects(_boxes([]), images).of_kind("gt")
    with pytest.raises(SourceError, match=r"kind must be .* got \['gt'\]"):
        Objects(_boxes([["0", 1, 1, 2, 2, "cat", np.nan, "gt"]]), images)
