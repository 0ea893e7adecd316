"""Train ``fashion-gen``: a text-conditional VAE on Fashion-MNIST, in minutes on a CPU.

Why: the offline demo and the tests need a generator whose images mean something, as
``fashion-tiny`` is a CLIP whose vectors mean something (see :mod:`dataexplore.models.generator`).

What: a conditional VAE (16-d latent, learned conditional prior ``p(z | text)``, trained on
``KL(q(z | x, text) || p(z | text))``) on the 60,000 Fashion-MNIST train images. Each image is
conditioned on ``fashion-tiny``'s text embedding of a caption of its class, one of the 8
templates × 10 class phrases ``fashion-tiny`` was trained with (embedded once, 80 vectors); for
10% of the images the condition is a zero vector, so guidance and negative prompts work. Only
the decoder and prior ship (fp16 safetensors, < 1 MB); the encoder is needed for training only.

Evaluation (``metrics.json``), on images generated for the prompt ``"a photo of a {class}."``:

- ``conditional_accuracy``: the fraction that an *independent* classifier assigns to the
  prompted class, per class and overall. The classifier is a logistic regression on the raw
  pixels of 20,000 real train images (it never sees the generator); its accuracy on the real
  test split is reported next to it for reference. The same numbers
  with ``fashion-tiny`` zero-shot as the classifier are reported too.
- ``diversity``: mean pairwise cosine distance between ``fashion-tiny`` image embeddings of the
  generated images of a class, next to the same number for real test images of that class.
- ``negative_prompt``: for pairs of look-alike classes, how often images for one class are
  classified as the other, with and without that other class as negative prompt.
- ``train_seconds``: the training loop alone (data loading and evaluation excluded).

Reproducible: fixed seeds and step count; bit-exact results need the same torch version and
thread count.

Run::

    python -m dataexplore.models.train_fashion_gen [--steps 2000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from .train_fashion_tiny import CLASS_PHRASES, TEMPLATES

HERE = Path(__file__).parent / "fashion-gen"
#: The prompt template the evaluation uses (one of the training templates).
EVAL_TEMPLATE = "a photo of a {}."
#: (prompted class, look-alike class used as negative prompt), by index into CLASS_PHRASES.
NEGATIVE_PAIRS = ((6, 0), (0, 6), (2, 4), (4, 2), (7, 5), (9, 7))


def build_encoder(embed_dim: int, latent_dim: int, cond_dim: int, hidden: int, channels: int):
    """The VAE encoder ``(image, text vector) -> (mean, log-variance)`` of ``z``; training only."""
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(1, channels // 2, 4, 2, 1), nn.SiLU(),
                                      nn.Conv2d(channels // 2, channels, 4, 2, 1), nn.SiLU(), nn.Flatten())
            self.cond = nn.Linear(embed_dim, cond_dim)
            self.fc = nn.Sequential(nn.Linear(channels * 49 + cond_dim, hidden), nn.SiLU(),
                                    nn.Linear(hidden, 2 * latent_dim))

        def forward(self, x: torch.Tensor, e: torch.Tensor):
            h = self.fc(torch.cat([self.conv(x[:, None]), self.cond(e)], dim=1))
            return h.chunk(2, dim=1)

    return Encoder()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--guidance", type=float, default=2.0, help="default guidance scale written to config")
    parser.add_argument("--null-rate", type=float, default=0.1, help="fraction of images trained unconditioned")
    parser.add_argument("--eval-n", type=int, default=200, help="images per class for the metrics")
    parser.add_argument("--classifier-n", type=int, default=20000, help="real images the judging classifier sees")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the weights (default: the package's)")
    args = parser.parse_args(argv)

    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    from ..sources.datasets import fashion_mnist
    from . import embed_prompts, load_model, weights_fingerprint
    from .generator import CONFIG_FILE, FORMAT, WEIGHTS_FILE, Generator, build_decoder

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    train, test = fashion_mnist("train"), fashion_mnist("test")
    x_train = torch.as_tensor(train.images, dtype=torch.float32) / 255
    y_train = torch.tensor(train.table.label_id.to_numpy())
    clip = load_model("fashion-tiny", device="cpu")
    captions = embed_prompts(clip, [t.format(c) for c in CLASS_PHRASES for t in TEMPLATES])
    captions_t = torch.as_tensor(captions).view(len(CLASS_PHRASES), len(TEMPLATES), -1)  # (class, template, D)
    arch = {"embed_dim": int(captions.shape[1]), "latent_dim": args.latent_dim, "cond_dim": 64, "hidden": 256,
            "channels": args.channels}
    encoder, decoder = build_encoder(**arch), build_decoder(**arch)
    params = list(encoder.parameters()) + list(decoder.parameters())
    print(f"{sum(p.numel() for p in decoder.parameters()):,} decoder parameters "
          f"(+{sum(p.numel() for p in encoder.parameters()):,} in the encoder)", flush=True)

    opt = torch.optim.Adam(params, lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps))))
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    encoder.train()
    decoder.train()
    for step in range(args.steps):
        idx = torch.randint(len(x_train), (args.batch_size,), generator=gen)
        x, y = x_train[idx], y_train[idx]
        cond = captions_t[y, torch.randint(len(TEMPLATES), (len(idx),), generator=gen)]
        keep = (torch.rand(len(idx), generator=gen) >= args.null_rate).float()[:, None]
        cond = cond * keep
        mu, logvar = encoder(x, cond)
        z = mu + torch.randn(mu.shape, generator=gen) * (0.5 * logvar).exp()
        logits = decoder(z, cond)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(idx)
        p_mu, p_logvar = decoder.prior_params(cond)  # KL(q(z | x, c) || p(z | c)), diagonal Gaussians
        kl = 0.5 * (p_logvar - logvar + (logvar.exp() + (mu - p_mu).pow(2)) / p_logvar.exp() - 1).sum() / len(idx)
        loss = rec + kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  reconstruction {rec.item():.1f}  kl {kl.item():.1f}  "
                  f"{time.perf_counter() - t0:.0f}s", flush=True)
    train_seconds = time.perf_counter() - t0

    args.out.mkdir(parents=True, exist_ok=True)
    decoder.eval()
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in decoder.state_dict().items()}
    save_file(state, str(args.out / WEIGHTS_FILE))
    config = {"format": FORMAT, "text_model": "fashion-tiny", "text_weights": weights_fingerprint(clip.model),
              **arch, "image_size": 28, "guidance": args.guidance}
    (args.out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")

    metrics = {"train_seconds": round(train_seconds, 1), **evaluate(Generator.load(args.out, device="cpu"), train,
                                                                      test, clip, args.eval_n, args.classifier_n),
               "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "null_rate": args.null_rate,
               "seed": args.seed, "torch": torch.__version__, "threads": torch.get_num_threads(),
               "templates": list(TEMPLATES), "class_phrases": list(CLASS_PHRASES), "eval_template": EVAL_TEMPLATE}
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps({k: metrics[k] for k in ("train_seconds", "conditional_accuracy")}, indent=1))
    print(f"wrote {args.out}")
    return 0


def pixel_classifier(train, n: int = 20000, seed: int = 0):
    """Logistic regression on the raw pixels of ``n`` real train images (fit once, ~20 s)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    rows = np.random.default_rng(seed).permutation(len(train.images))[:n]
    x = train.images[rows].reshape(len(rows), -1) / 255.0
    with warnings.catch_warnings():  # capped iterations: its real-test accuracy is reported next to it
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(max_iter=300, C=0.1).fit(x, train.table.label_id.to_numpy()[rows])


def image_vectors(clip, images: np.ndarray) -> np.ndarray:
    """Unit-norm ``fashion-tiny`` image embeddings of 28×28 uint8 images."""
    import torch
    from PIL import Image

    x = torch.stack([clip.preprocess(Image.fromarray(a, "L")) for a in images])
    with torch.inference_mode():
        f = torch.cat([clip.model.encode_image(b) for b in x.split(500)]).float()
    return torch.nn.functional.normalize(f, dim=-1).numpy()


def mean_pairwise_distance(vectors: np.ndarray) -> float:
    """Mean cosine distance over all pairs of distinct unit vectors."""
    sims = vectors @ vectors.T
    k = len(vectors)
    return float(1 - (sims.sum() - np.trace(sims)) / (k * (k - 1)))


def evaluate(generator, train, test, clip, n: int, classifier_n: int = 20000) -> dict:
    """The numbers of ``metrics.json`` (see the module docstring)."""
    from . import embed_prompts

    clf = pixel_classifier(train, classifier_n)
    real_x, real_y = test.images.reshape(len(test.images), -1) / 255.0, test.table.label_id.to_numpy()
    real_acc = clf.predict(real_x) == real_y
    zs_text = embed_prompts(clip, [t.format(c) for c in CLASS_PHRASES for t in TEMPLATES])
    zs_text = zs_text.reshape(len(CLASS_PHRASES), len(TEMPLATES), -1).mean(1)
    zs_text /= np.linalg.norm(zs_text, axis=1, keepdims=True)
    prompts = [EVAL_TEMPLATE.format(c) for c in CLASS_PHRASES]
    labels = np.repeat(np.arange(len(CLASS_PHRASES)), n)
    out: dict = {"classifier": f"logistic regression on raw pixels of {classifier_n:,} real Fashion-MNIST train images",
                 "classifier_accuracy_real_test": round(float(real_acc.mean()), 4), "images_per_class": n}
    guidances = sorted({1.0, float(generator.config["guidance"])})
    for g in guidances:
        images = generator.generate(prompts, n, guidance=g, seed=1)
        pred = clf.predict(images.reshape(len(images), -1) / 255.0)
        vecs = image_vectors(clip, images)
        zs = (vecs @ zs_text.T).argmax(1)
        tag = "" if g == generator.config["guidance"] else f"_guidance_{g:g}"
        out[f"conditional_accuracy{tag}"] = {
            "overall": round(float((pred == labels).mean()), 4),
            "per_class": {c: round(float((pred[labels == i] == i).mean()), 4) for i, c in enumerate(CLASS_PHRASES)},
            "fashion_tiny_zero_shot_overall": round(float((zs == labels).mean()), 4),
        }
        if tag == "":
            out["classifier_accuracy_real_test_per_class"] = {
                c: round(float(real_acc[real_y == i].mean()), 4) for i, c in enumerate(CLASS_PHRASES)}
            real_vecs = [image_vectors(clip, test.images[real_y == i][:n]) for i in range(len(CLASS_PHRASES))]
            out["diversity"] = {
                "measure": "mean pairwise cosine distance of fashion-tiny image embeddings, generated vs real test",
                "per_class": {c: {"generated": round(mean_pairwise_distance(vecs[labels == i]), 4),
                                  "real": round(mean_pairwise_distance(real_vecs[i]), 4)}
                              for i, c in enumerate(CLASS_PHRASES)},
            }
            per = out["diversity"]["per_class"].values()
            out["diversity"]["generated_mean"] = round(float(np.mean([v["generated"] for v in per])), 4)
            out["diversity"]["real_mean"] = round(float(np.mean([v["real"] for v in per])), 4)
    g = float(generator.config["guidance"])
    rows = []
    for target, other in NEGATIVE_PAIRS:
        prompt = EVAL_TEMPLATE.format(CLASS_PHRASES[target])
        row: dict = {"prompt": prompt, "negative": CLASS_PHRASES[other]}
        for key, kwargs in (("plain", {"guidance": 1.0}), ("guidance", {"guidance": g}),
                            ("guidance_negative", {"guidance": g, "negative": CLASS_PHRASES[other]})):
            pred = clf.predict(generator.generate(prompt, n, seed=2, **kwargs).reshape(n, -1) / 255.0)
            row[key] = {"on_target": round(float((pred == target).mean()), 4),
                        "as_negative_class": round(float((pred == other).mean()), 4)}
        rows.append(row)
    out["negative_prompt"] = {"guidance": g, "pairs": rows}
    return out


if __name__ == "__main__":
    raise SystemExit(main())
