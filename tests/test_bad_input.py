"""Every way a real image collection is broken: each case decodes right or fails alone, with a reason."""

import io

import numpy as np
import pytest
from PIL import Image

import dataexplore as dx
from dataexplore.core.errors import SourceError
from dataexplore.core.images import DecodeError, decode


def _jpeg(arr, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", **kw)
    return buf.getvalue()


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


@pytest.fixture
def broken_folder(tmp_path, photos):
    """Two good photos and one file for each kind of trouble."""
    d = tmp_path / "mixed"
    d.mkdir()
    good = _jpeg(photos["chelsea"])
    (d / "good.jpg").write_bytes(good)
    (d / "ünïcødé 画像.jpg").write_bytes(_jpeg(photos["coffee"]))
    (d / "corrupt.jpg").write_bytes(np.random.default_rng(0).bytes(5000))
    (d / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (d / "empty.png").write_bytes(b"")
    (d / "notes.png").write_text("this is not an image")
    bomb = Image.new("1", (12_000, 12_000))  # 144 Mpx, a few KB on disk
    bomb.save(d / "bomb.png")
    return d


def test_bad_files_are_skipped_and_listed_with_reasons(broken_folder):
    emb = dx.embed(broken_folder, model="fashion-tiny")
    assert sorted(emb.ids) == ["good.jpg", "ünïcødé 画像.jpg"]
    reasons = dict(zip(emb.failures.id, emb.failures.reason))
    assert reasons["corrupt.jpg"].startswith("not an image")
    assert reasons["truncated.jpg"].startswith("truncated or corrupt")
    assert reasons["empty.png"] == "empty file"
    assert reasons["notes.png"].startswith("not an image")
    assert reasons["bomb.png"].startswith("image too large (12000x12000")
    assert emb.stats == {"computed": 2, "cached": 0, "failed": 5}
    # failures are remembered too: an unchanged rerun decodes nothing
    again = dx.embed(broken_folder, model="fashion-tiny")
    assert again.stats == {"computed": 0, "cached": 7, "failed": 5}
    np.testing.assert_array_equal(np.sort(again.failures.id), np.sort(emb.failures.id))


def test_missing_file_in_a_path_list(photo_folder):
    paths = [str(photo_folder / "animals/chelsea.jpg"), str(photo_folder / "gone.jpg")]
    emb = dx.embed(paths, model="fashion-tiny")
    assert list(emb.ids) == paths[:1]
    assert emb.failures.reason.tolist() == ["missing file"] and emb.failures.row.tolist() == [1]


def test_cmyk_decodes_to_rgb(photos):
    buf = io.BytesIO()
    Image.fromarray(photos["coffee"]).convert("CMYK").save(buf, "JPEG", quality=95)
    img = decode(buf.getvalue())
    assert img.mode == "RGB" and img.size == (600, 400)
    # colours survive the CMYK round trip (not inverted)
    assert abs(np.asarray(img, float).mean() - photos["coffee"].mean()) < 12


def test_16_bit_png_is_scaled_not_clipped():
    arr = np.full((16, 16), 32768, np.uint16)
    img = decode(_png(Image.fromarray(arr)))
    assert img.mode == "RGB" and abs(np.asarray(img).mean() - 127.5) < 1.5


def test_palette_with_transparency_is_composited_on_white():
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([255, 0, 0] + [0, 0, 0] * 255)
    pal.info["transparency"] = 0
    img = decode(_png(pal, transparency=0))
    assert img.getpixel((0, 0)) == (255, 255, 255)


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in ((0, 0, 255), (255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    r, g, b = decode(buf.getvalue()).getpixel((5, 5))
    assert b > 200 and r < 50 and g < 50


def test_exif_orientation_is_applied(photos):
    img = Image.fromarray(photos["chelsea"])  # 451 wide, 300 high
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    assert decode(buf.getvalue()).size == (300, 451)


def test_decompression_bomb_is_rejected_before_decoding():
    header_only = _png(Image.new("1", (12_000, 12_000)))
    with pytest.raises(DecodeError, match="image too large"):
        decode(header_only)
    with pytest.raises(DecodeError, match="limit 100"):
        decode(_png(Image.new("L", (20, 10))), max_pixels=100)


def test_in_memory_rgba_and_bad_shapes():
    rgba = np.zeros((4, 4, 4), np.uint8)
    assert decode(rgba).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(DecodeError, match="shape"):
        decode(np.zeros((4, 4, 2), np.uint8))


def test_nan_and_inf_vectors_name_the_sample():
    vecs = np.ones((3, 4), np.float32)
    vecs[2, 1] = np.nan
    with pytest.raises(SourceError, match=r"sample 'c' \(row 2\) contains NaN or inf"):
        dx.Embeddings.from_arrays(["a", "b", "c"], vecs)
    vecs[2, 1] = np.inf
    with pytest.raises(SourceError, match="'c'"):
        dx.project(dx.Embeddings(ids=["a", "b", "c"], vectors=vecs), method="pca")


def test_duplicate_ids_and_mismatched_lengths_in_embeddings():
    with pytest.raises(SourceError, match="duplicate sample id 'a'"):
        dx.Embeddings.from_arrays(["a", "a"], np.ones((2, 3)))
    with pytest.raises(SourceError, match="mismatched lengths: 3 ids but 2 vectors"):
        dx.Embeddings.from_arrays(["a", "b", "c"], np.ones((2, 3)))


@pytest.mark.parametrize("name, model", [("rocket", "ViT-B-32"), ("astronaut", "ViT-B-32"),
                                         ("chelsea", "ViT-B-32"), ("camera", "fashion-tiny"), ("tiny", "fashion-tiny")])
def test_fused_resize_crop_matches_clip_preprocessing(photos, name, model):
    """The one-pass resize+crop gives the pixels of CLIP's Resize + CenterCrop (within uint8 rounding)."""
    from dataexplore.core.images import resize_center_crop
    from dataexplore.models import load_model

    if name == "tiny":  # a Fashion-MNIST-sized image, upsampled to 32
        img = Image.fromarray(photos["camera"][100:128, 200:228]).convert("RGB")
    else:
        img = Image.fromarray(photos[name]).convert("RGB")
    if name == "chelsea":
        img = img.transpose(Image.TRANSPOSE)  # a portrait photo too
    clip = load_model(model)
    size = clip.preprocess_cfg["size"]
    size = size if isinstance(size, int) else size[0]
    a, b = clip.preprocess(img), clip.preprocess(resize_center_crop(img, size, "bicubic"))
    assert resize_center_crop(img, size).size == (size, size)
    level = 1 / 255 / min(clip.preprocess_cfg["std"])  # one uint8 step after normalisation
    assert (a - b).abs().max() <= 2.5 * level and (a - b).abs().mean() < 0.3 * level
