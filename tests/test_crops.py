"""Object crops embed through the same engine and cache as images: the box plus a margin, squared,
each image decoded once, keyed by (image content, box, margin), so a second run computes nothing."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import dataexplore as dx
from dataexplore.core.crops import CropSamples, crops
from dataexplore.core.errors import SourceError
from dataexplore.core.objects import Objects


def _scene_files(folder, n=3):
    """n real Fashion-MNIST items pasted at known places on 80×60 canvases, saved as PNG files."""
    items = dx.load("fashion-mnist:test:12").images
    paths, boxes = [], []
    for i in range(n):
        canvas = np.full((60, 80), 20, np.uint8)
        for j, (x, y) in enumerate(((4, 6), (44, 20))):
            canvas[y:y + 28, x:x + 28] = np.maximum(canvas[y:y + 28, x:x + 28], items[2 * i + j])
            boxes.append({"image_id": f"img{i}", "x": x, "y": y, "w": 28, "h": 28, "label": f"item{2 * i + j}",
                          "kind": "ground_truth"})
        p = folder / f"img{i}.png"
        Image.fromarray(canvas).save(p)
        paths.append(str(p))
    images = dx.load(pd.DataFrame({"id": [f"img{i}" for i in range(n)], "filepath": paths,
                                   "width": 80, "height": 60}))
    return Objects(pd.DataFrame(boxes), images), items


def test_a_crop_is_the_box_with_its_margin_squared_and_black_past_the_edge():
    img = np.zeros((1, 40, 60), np.uint8)
    img[0, 10:20, 5:25] = 200
    obj = Objects(pd.DataFrame({"image_id": ["0", "0"], "x": [5, 50], "y": [10, 0], "w": [20, 10], "h": [10, 10],
                                "label": ["wide", "corner"], "kind": "ground_truth"}), dx.load(img))
    c = crops(obj, margin=0.1)
    wide = c.read(0)[:, :, 0]
    assert wide.shape == (24, 24)  # 20 + 2 × 0.1 × 20, square
    assert (wide[7:17, 2:22] == 200).all() and wide.sum() == 200 * 200  # the whole box, centred
    corner = c.read(1)[:, :, 0]
    assert corner.shape == (12, 12) and corner[:1].sum() == 0  # a row above the image: black
    with pytest.raises(SourceError, match="margin"):
        crops(obj, margin=-1)


def test_crops_embed_like_the_same_pixels_and_a_second_run_reads_no_image(tmp_path, monkeypatch):
    obj, _ = _scene_files(tmp_path)
    cache = tmp_path / "cache"
    first = dx.embed(obj, cache_dir=cache, progress=False, precision="fp32")
    assert list(first.ids) == list(obj.ids) and first.stats["computed"] == 6
    assert first.table["label"].tolist() == obj.table["label"].tolist()

    same = np.stack([crops(obj).read(r) for r in range(len(obj))])
    direct = dx.embed(same, cache_dir=tmp_path / "other", progress=False, precision="fp32")
    np.testing.assert_allclose(first.vectors, direct.vectors, atol=1e-5)

    reads = []
    real = dx.Samples.read
    monkeypatch.setattr(dx.Samples, "read", lambda self, row: reads.append(row) or real(self, row))
    again = dx.embed(obj, cache_dir=cache, progress=False, precision="fp32")
    assert again.stats == {"computed": 0, "cached": 6, "failed": 0} and reads == []
    np.testing.assert_array_equal(again.vectors, first.vectors)

    moved = obj.table.assign(x=obj.table["x"] + 1.0)  # one pixel to the right: new crops
    shifted = dx.embed(Objects(moved, obj.images), cache_dir=cache, progress=False, precision="fp32")
    assert shifted.stats["computed"] == 6
    assert sorted(reads) == [0, 1, 2]  # each image read and decoded once for its two boxes


def test_an_unreadable_image_fails_its_crops_with_the_reason_and_the_rest_embed(tmp_path):
    obj, _ = _scene_files(tmp_path)
    (tmp_path / "img1.png").write_bytes(b"not a png")
    emb = dx.embed(obj, cache_dir=tmp_path / "cache", progress=False)
    assert len(emb) == 4
    assert emb.failures["id"].tolist() == ["img1/ground_truth/0", "img1/ground_truth/1"]
    assert emb.failures["reason"].str.contains("not an image").all()


def test_crop_samples_subset_keeps_their_boxes():
    img = np.arange(40 * 60, dtype=np.uint8).reshape(1, 40, 60) % 251
    obj = Objects(pd.DataFrame({"image_id": ["0", "0"], "x": [5, 30], "y": [5, 20], "w": [10, 8], "h": [10, 8],
                                "label": ["a", "b"], "kind": "ground_truth"}), dx.load(img))
    c = crops(obj)
    sub = c.subset([1])
    assert isinstance(sub, CropSamples) and list(sub.ids) == [obj.ids[1]]
    np.testing.assert_array_equal(sub.read(0), c.read(1))


def test_the_map_hover_shows_the_crop_beside_its_image_with_the_box_drawn_and_the_grid_the_crop():
    img = np.zeros((1, 40, 80), np.uint8)
    img[0, 10:30, 50:70] = 255
    obj = Objects(pd.DataFrame({"image_id": ["0", "0"], "x": [50, 5], "y": [10, 5], "w": [20, 10], "h": [20, 10],
                                "label": ["a", "b"], "kind": "ground_truth"}), dx.load(img))
    pic = crops(obj).in_context(0, size=64)
    assert pic.shape == (64, 128, 3)
    assert pic[:, :64].mean() > 150  # the crop: mostly the white square
    right = pic[:, 64:].astype(int)
    yellow = (right[:, :, 0] > 200) & (right[:, :, 1] > 150) & (right[:, :, 2] < 80)
    ys, xs = np.nonzero(yellow)  # the image (80×40) fitted into 64: scale 0.8, 16 px letterbox on top
    assert abs(xs.min() - 40) <= 1 and abs(xs.max() - 55) <= 1 and abs(ys.min() - 24) <= 1
    grey = (np.abs(right[:, :, 0] - 150) < 30) & (np.abs(right[:, :, 0] - right[:, :, 2]) < 20)
    assert grey[12:22, 3:13].any()  # the image's other box, in grey

    ex = dx.explore(obj, progress=False, method="pca")
    hover = Image.open(io.BytesIO(ex.thumbnail(0, context=True)))
    grid = Image.open(io.BytesIO(ex.thumbnail(0)))
    assert hover.size == (256, 128) and grid.size[0] == grid.size[1]


def test_the_export_menu_of_an_object_map_writes_box_tasks_for_the_images_of_the_selection(tmp_path):
    import json

    obj, _ = _scene_files(tmp_path)
    ex = dx.explore(obj, progress=False, method="pca", cache_dir=tmp_path / "cache", export_dir=tmp_path / "out")
    assert set(ex.exporters) == {"query", "label-studio", "coco"}
    ex.select(["img2/ground_truth/1"])
    folder = ex.export("one box", "label-studio")
    tasks = json.loads((folder / "tasks.json").read_text())
    assert len(tasks) == 1  # the image holding the selected object, with all its boxes
    results = tasks[0]["predictions"][0]["result"]
    assert sorted(r["id"] for r in results) == ["img2/ground_truth/0", "img2/ground_truth/1"]
    assert {r["type"] for r in results} == {"rectanglelabels"}
    coco = json.loads((ex.export("one box", "coco") / "annotations.json").read_text())
    assert [a["bbox"] for a in coco["annotations"]] == [[4.0, 6.0, 28.0, 28.0], [44.0, 20.0, 28.0, 28.0]]


def test_an_object_carries_its_image_metadata_to_the_map():
    scenes = dx.fashion_scenes("test", 4, seed=0)
    emb_table = crops(scenes).table
    per_image = scenes.images.table.set_index("id")
    first = emb_table.iloc[0]
    assert first["image_background"] == per_image.loc[first["image_id"], "background"]  # a canvas column
    assert first["image_width"] == 96 and first["image_height"] == 96
    assert {"x", "y", "w", "h", "label", "faint"} <= set(emb_table.columns)  # the object's own columns stay


def test_clicking_one_object_then_select_images_selects_every_box_of_its_image(tmp_path):
    obj, _ = _scene_files(tmp_path)
    ex = dx.explore(obj, progress=False, method="pca", cache_dir=tmp_path / "cache")
    ex.select(["img1/ground_truth/0"])
    assert list(ex.select_images().ids) == ["img1/ground_truth/0", "img1/ground_truth/1"]
    plain = dx.explore(np.zeros((3, 8, 8), np.uint8), progress=False, method="pca", cache_dir=tmp_path / "cache")
    with pytest.raises(dx.DataexploreError, match="map of objects"):
        plain.select_images()


def test_hostile_boxes_and_wrong_sizes_fail_their_crops_with_a_reason_and_the_rest_embed(tmp_path):
    obj, _ = _scene_files(tmp_path)
    table = obj.table.copy()
    table.loc[0, "w"] = 1e6  # a box from a file asking for a 2.7 TiB crop
    huge = dx.embed(Objects(table, obj.images), cache_dir=tmp_path / "cache", progress=False)
    assert huge.failures["id"].tolist() == [obj.ids[0]] and len(huge) == 5
    assert huge.failures["reason"].iloc[0].startswith("box far larger than its image")

    wrong = obj.images.table.assign(width=160, height=120)  # sizes the files do not have
    lied = dx.embed(Objects(obj.table, dx.load(wrong)), cache_dir=tmp_path / "cache", progress=False)
    assert len(lied) == 0 and lied.failures["reason"].str.contains("image is 80×60, its boxes assume 160×120").all()

    small = dx.embed(obj, cache_dir=tmp_path / "cache2", progress=False, max_pixels=1000)  # the call's limit
    assert len(small) == 0 and small.failures["reason"].str.contains("too large").all()


def test_each_image_is_decoded_once_even_when_its_boxes_are_not_together(tmp_path, monkeypatch):
    obj, _ = _scene_files(tmp_path)
    shuffled = Objects(obj.table.iloc[[0, 2, 4, 1, 3, 5]], obj.images)  # img0, img1, img2, img0, img1, img2
    from dataexplore.core import crops as crops_module

    decoded, reads = [], []
    real_decode, real_read = crops_module.decode, dx.Samples.read
    monkeypatch.setattr(crops_module, "decode", lambda data, **kw: decoded.append(1) or real_decode(data, **kw))
    monkeypatch.setattr(dx.Samples, "read", lambda self, row: reads.append(row) or real_read(self, row))
    emb = dx.embed(shuffled, cache=False, progress=False)
    assert list(emb.ids) == list(shuffled.ids) and len(decoded) == 3  # one decode per image
    reads.clear()
    only_one = Objects(obj.table.iloc[[0]], obj.images)  # the first image's box: the others are not read
    dx.embed(only_one, cache_dir=tmp_path / "cache", progress=False)
    assert set(reads) == {0}
