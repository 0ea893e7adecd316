import json
import shutil

import numpy as np
import pytest

import dataexplore as dx
from dataexplore.core.errors import DataexploreError, ModelError
from dataexplore.models import BUILTIN_MODELS, load_model
from dataexplore.models.train_fashion_tiny import CLASS_PHRASES, TEMPLATES


def test_vectors_are_normalised_float32_aligned_to_ids_with_model_identity():
    emb = dx.embed("fashion-mnist:test:300", model="fashion-tiny")
    assert emb.vectors.dtype == np.float32 and emb.vectors.shape == (300, 128)
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, atol=1e-5)
    assert emb.ids[0] == "test-00000" and list(emb.table.label[:2]) == ["Ankle boot", "Pullover"]
    assert emb.model["arch"] == "fashion-tiny" and len(emb.model["weights"]) == 32
    assert emb.model["preprocess"]["size"] in (32, [32, 32]) and emb.model["preprocess"]["mean"][0] == 0.286
    # the same image gives the same vector whatever else is in the batch
    alone = dx.embed(dx.load("fashion-mnist:test:300").subset([7]), model="fashion-tiny", cache=False)
    np.testing.assert_allclose(alone.vectors[0], emb.vectors[7], atol=1e-2)


def test_fashion_tiny_is_a_real_model_zero_shot_accuracy():
    """The shipped model must understand its images: zero-shot accuracy >= 0.75 on the test split."""
    emb = dx.embed("fashion-mnist:test", model="fashion-tiny")
    text = dx.embed_text([t.format(c) for c in CLASS_PHRASES for t in TEMPLATES], model="fashion-tiny")
    classes = text.reshape(len(CLASS_PHRASES), len(TEMPLATES), -1).mean(1)
    classes /= np.linalg.norm(classes, axis=1, keepdims=True)
    pred = (emb.vectors @ classes.T).argmax(1)
    acc = (pred == emb.table.label_id.to_numpy()).mean()
    assert acc >= 0.75, acc


def test_text_and_images_share_a_space():
    emb = dx.embed("fashion-mnist:test:200", model="fashion-tiny")
    sneaker, bag = dx.embed_text(["a photo of a sneaker.", "a photo of a bag."])
    labels = emb.table.label.to_numpy()
    assert (emb.vectors[labels == "Sneaker"] @ sneaker).mean() > (emb.vectors[labels == "Bag"] @ sneaker).mean()
    assert dx.embed_text("a bag").shape == (1, 128)


def test_progress_bar_reports_images_per_second(capfd):
    dx.embed("fashion-mnist:test:64", model="fashion-tiny", progress=True)
    assert "img/s" in capfd.readouterr().err
    dx.embed("fashion-mnist:test:65", model="fashion-tiny", progress=False)
    assert "img/s" not in capfd.readouterr().err


def test_device_auto_is_cpu_here_and_missing_cuda_is_a_clear_error():
    from dataexplore.models.device import pick_device

    assert pick_device("auto").type == "cpu"
    with pytest.raises(DataexploreError, match="no CUDA GPU"):
        dx.embed("fashion-mnist:test:4", device="cuda")


def test_precisions_agree():
    fp32 = dx.embed("fashion-mnist:test:128", precision="fp32", cache=False)
    bf16 = dx.embed("fashion-mnist:test:128", precision="bf16", cache=False, batch_size=32, num_workers=0)
    cos = (fp32.vectors * bf16.vectors).sum(1)
    assert cos.min() > 0.98


def test_torchvision_jpeg_decode_matches_pil(photo_folder):
    pil = dx.embed(photo_folder, cache=False)
    tv = dx.embed(photo_folder, cache=False, decode="torchvision")
    assert list(pil.ids) == list(tv.ids)
    assert (pil.vectors * tv.vectors).sum(1).min() > 0.95


def test_local_dir_and_weights_file_give_the_same_identity(tmp_path):
    import open_clip

    folder = tmp_path / "my-model"
    shutil.copytree(BUILTIN_MODELS["fashion-tiny"], folder)
    builtin = load_model("fashion-tiny")
    local = load_model(f"local-dir:{folder}")
    assert local.identity["weights"] == builtin.identity["weights"]
    # an architecture name plus a local weights file
    cfg = json.loads((folder / "open_clip_config.json").read_text())
    (tmp_path / "tiny-arch.json").write_text(json.dumps(cfg["model_cfg"]))
    open_clip.add_model_config(tmp_path / "tiny-arch.json")
    by_file = load_model("tiny-arch", pretrained=str(folder / "open_clip_model.safetensors"))
    assert by_file.identity["weights"] == builtin.identity["weights"]


def test_bad_model_names_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'ViT-B-33'; did you mean"):
        load_model("ViT-B-33")
    with pytest.raises(ModelError, match="weights file not found"):
        load_model("ViT-B-32", pretrained=str(tmp_path / "nope.safetensors"))
    with pytest.raises(ModelError, match="unknown weights tag 'laion9'"):
        load_model("ViT-B-32", pretrained="laion9")
    with pytest.raises(ModelError, match="could not load model 'ViT-B-32'.*model hub"):
        load_model("ViT-B-32", pretrained="laion2b_s34b_b79k")  # HF_HUB_OFFLINE=1: fails at once


def test_an_engine_is_a_row_of_the_table_and_gets_only_what_the_cache_lacks(monkeypatch):
    """dx.embed does the shared work (samples, model, content keys, cache lookups) once and hands the
    rest to the engine named in ENGINES: adding an engine is adding a row."""
    import dataclasses

    from dataexplore.embedding import local

    @dataclasses.dataclass
    class Constant:
        OPTIONS = {}
        HINT = ""
        decoder = "pil"
        hashes_while_decoding = False
        todo = None

        def start(self, device):
            return "cpu"

        def compute(self, run):
            Constant.todo = run.todo.tolist()
            run.vectors[run.todo] = 1 / np.sqrt(run.vectors.shape[1])
            run.stats["computed"] += len(run.todo)

    monkeypatch.setitem(local.ENGINES, "constant", Constant)
    dx.embed("fashion-mnist:test:10", progress=False)
    emb = dx.embed("fashion-mnist:test:12", engine="constant", progress=False)
    assert Constant.todo == [10, 11] and emb.stats == {"computed": 2, "cached": 10, "failed": 0}
    np.testing.assert_allclose(emb.vectors[10:], 1 / np.sqrt(128))
    with pytest.raises(DataexploreError, match="engine must be 'local' or 'ray' or 'constant', got 'spark'"):
        dx.embed("fashion-mnist:test:4", engine="spark")
    with pytest.raises(DataexploreError, match="num_workers is only used with engine='local'"):
        dx.embed("fashion-mnist:test:4", engine="constant", num_workers=2)
