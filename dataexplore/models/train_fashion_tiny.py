"""Train ``fashion-tiny``: a small but real CLIP model on Fashion-MNIST, in minutes on a CPU.

Why: no pretrained CLIP can be downloaded on offline machines (CI, air-gapped clusters), yet
tests and the demo need a model whose embeddings mean something. This script trains the
open_clip architecture described by ``fashion-tiny/open_clip_config.json`` (ViT 32×32 input,
8×8 patches, 3 vision and 2 text layers, width 128, ~7.5M parameters) on the Fashion-MNIST
train split with captions built from the class names, evaluates zero-shot accuracy on the
test split, and writes the fp16 weights plus ``metrics.json`` next to the config.

Reproducible: fixed seeds, fixed step count, and the exact inference preprocessing of the
shipped model. Bit-exact results need the same torch version and thread count.

Run::

    python -m dataexplore.models.train_fashion_tiny [--steps 500] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ..sources.datasets import FASHION_MNIST_PHRASES

HERE = Path(__file__).parent / "fashion-tiny"

#: Prompt templates; ``{}`` is replaced by a class phrase. Zero-shot uses their average.
TEMPLATES = (
    "a photo of a {}.",
    "a grayscale photo of a {}.",
    "a low resolution photo of a {}.",
    "a picture of a {}.",
    "a photo of the {}.",
    "a {}.",
    "a product photo of a {}.",
    "a small photo of a {}.",
)
#: Natural-language phrases for the ten Fashion-MNIST classes, in label order.
#: Class phrases in label order (captions are built from them).
CLASS_PHRASES = FASHION_MNIST_PHRASES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the weights (default: the package's)")
    args = parser.parse_args(argv)

    import open_clip
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    from dataexplore.sources.datasets import fashion_mnist

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:  # config alone: open_clip builds a random-init model
        shutil.copy(HERE / "open_clip_config.json", tmp)
        model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tmp}")
        tokenizer = open_clip.get_tokenizer(f"local-dir:{tmp}")

    def prepare(samples) -> torch.Tensor:
        from PIL import Image

        return torch.stack([preprocess(Image.fromarray(a, "L")) for a in samples.images])

    train, test = fashion_mnist("train"), fashion_mnist("test")
    x_train, y_train = prepare(train), torch.as_tensor(train.table.label_id.to_numpy())
    x_test, y_test = prepare(test), torch.as_tensor(test.table.label_id.to_numpy())
    captions = tokenizer([t.format(c) for c in CLASS_PHRASES for t in TEMPLATES])  # (class, template)
    captions = captions.view(len(CLASS_PHRASES), len(TEMPLATES), -1)
    print(f"data ready in {time.perf_counter() - t0:.1f}s; {sum(p.numel() for p in model.parameters()):,} parameters")

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1)
    warmup = max(1, args.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps)))
    )
    gen = torch.Generator().manual_seed(args.seed)
    model.train()
    for step in range(args.steps):
        idx = torch.randint(len(x_train), (args.batch_size,), generator=gen)
        images, labels = x_train[idx], y_train[idx]
        flip = torch.rand(len(idx), generator=gen) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        tmpl = torch.randint(len(TEMPLATES), (len(idx),), generator=gen)
        texts = captions[labels, tmpl]
        img = F.normalize(model.encode_image(images), dim=-1)
        txt = F.normalize(model.encode_text(texts), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.T
        # captions of the same class are positives too: soft targets over all same-class pairs
        same = (labels[:, None] == labels[None, :]).float()
        target = same / same.sum(1, keepdim=True)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.3f}  {time.perf_counter() - t0:.0f}s", flush=True)

    model.eval()
    with torch.inference_mode():
        cls = F.normalize(model.encode_text(captions.flatten(0, 1)), dim=-1).view(*captions.shape[:2], -1)
        cls = F.normalize(cls.mean(1), dim=-1)
        feats = torch.cat([F.normalize(model.encode_image(b), dim=-1) for b in x_test.split(1000)])
        acc = (feats @ cls.T).argmax(1).eq(y_test).float().mean().item()
    print(f"zero-shot accuracy on the test split: {acc:.4f}")

    args.out.mkdir(parents=True, exist_ok=True)
    if args.out.resolve() != HERE.resolve():
        shutil.copy(HERE / "open_clip_config.json", args.out)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(args.out / "open_clip_model.safetensors"))
    metrics = {
        "zero_shot_accuracy_test": round(acc, 4),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "torch": torch.__version__,
        "templates": list(TEMPLATES),
        "class_phrases": list(CLASS_PHRASES),
    }
    if args.out.resolve() == HERE.resolve():  # the concept-match threshold of the shipped model
        from ..language.calibration import calibrate_model
        from . import _CACHE

        _CACHE.clear()
        metrics["concept_calibration"] = calibrate_model("fashion-tiny", "fashion-mnist:train")
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
