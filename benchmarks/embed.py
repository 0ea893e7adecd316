"""Embedding throughput: dataexplore.embed against the loop a user would write, in one process.

Rows, all on the same JPEG files and the same model object:

(a) plain loop    PIL open -> open_clip preprocess -> encode_image per batch, one process, fp32
(b) dataexplore   dataexplore.embed (bf16 tower; on a CPU one thread per core decoding a batch and
                  running the model on it, on a GPU DataLoader workers; batched cache commits), cold cache
(c) cache hit     the same call again: every vector from the cache
(d) model only    encode_image on ready tensors with (b)'s settings (on a CPU: the same threads, one torch
                  thread each): the ceiling for (b)
(e) decode only   (b)'s decoding pipeline (DataLoader workers on a GPU machine, the threads on a CPU:
                  read once, hash, decode, resize) with no model: the other ceiling for (b); on a GPU it is
                  usually the lower one

Targets on one CUDA card (``--device cuda``, ViT-B-32, JPEG files): (b) >= 3x (a) and (b) >= 85 %
of min((d), (e)), the decode ceiling when decoding is the bottleneck.

(a), (b), (c), (d) run interleaved ``--repeat`` times; medians are reported, with (a)/(b) of each round.

Run::

    .venv/bin/python benchmarks/embed.py --model ViT-B-32 --n 256 --repeat 3

Random weights are fine for timing (``--pretrained`` to load real ones). The images are JPEG files
made from the natural photos that ship with scikit-image and scikit-learn, cropped and rescaled to
640x427 so each file is distinct.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def make_images(folder: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` distinct 640x427 JPEGs from real photographs (random crops, flips, brightness)."""
    from PIL import Image, ImageEnhance
    from skimage import data
    from sklearn.datasets import load_sample_images

    sources = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.camera(), data.coins(),
               *load_sample_images().images]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = Image.fromarray(sources[i % len(sources)]).convert("RGB")
        w, h = img.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = img.crop((x0, y0, x0 + cw, y0 + ch)).resize((640, 427), Image.BICUBIC)
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2))
        path = folder / f"img_{i:05d}.jpg"
        img.save(path, quality=90)
        paths.append(str(path))
    return paths


def decode_only(paths: list[str], clip, dev, batch: int) -> float:
    """Seconds for (b)'s decoding pipeline alone: every image decoded, resized and batched, no model."""
    import torch

    import dataexplore as dx
    from dataexplore.core.images import DEFAULT_MAX_PIXELS
    from dataexplore.embedding.batches import ImageDataset, collate
    from dataexplore.embedding.plan import cpu_count

    n = len(paths)
    data = ImageDataset(dx.load(paths), np.arange(n), clip.preprocess_cfg, clip.preprocess, DEFAULT_MAX_PIXELS,
                        hash_rows=set(range(n)))
    t = time.perf_counter()
    if dev.type == "cpu":  # the threads dx.embed uses on a CPU, without the model
        with ThreadPoolExecutor(cpu_count()) as pool:
            list(pool.map(lambda s: data.batch(s, min(s + batch, n)), range(0, n, batch)))
    else:  # the same DataLoader settings as dx.embed on an accelerator
        workers = min(8, max(1, cpu_count() - 1))
        loader = torch.utils.data.DataLoader(data, batch_size=batch, num_workers=workers, collate_fn=collate,
                                             pin_memory=dev.type == "cuda", prefetch_factor=4)
        for b in loader:
            if b.pixels is not None:
                b.pixels.to(dev, non_blocking=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - t


def model_only(tower, ready: list, dev, dtype) -> float:
    """Seconds for the image tower alone on ready tensors, run as dx.embed runs it: on a CPU by one
    thread per core with one torch thread each, elsewhere batch after batch."""
    import torch
    import torch.nn.functional as F

    from dataexplore.embedding.plan import cpu_count

    def one(x):
        with torch.inference_mode():
            return F.normalize(tower(x.to(dev, dtype)).float(), dim=-1).cpu()

    threads = torch.get_num_threads()
    t = time.perf_counter()
    if dev.type == "cpu":
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(cpu_count()) as pool:
                list(pool.map(one, ready))
        finally:
            torch.set_num_threads(threads)
    else:
        for x in ready:
            one(x)
        if dev.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - t


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--pretrained", default=None)
    parser.add_argument("--n", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=None, help="default: what dataexplore picks")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeat", type=int, default=3, help="runs of (a), (b), (c), (d); medians reported")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)

    import torch
    import torch.nn.functional as F
    from PIL import Image

    import dataexplore as dx
    from dataexplore.embedding.inprocess import thread_batch_size
    from dataexplore.embedding.plan import cpu_batch_size, cpu_count
    from dataexplore.models import load_model
    from dataexplore.models.device import image_tower, pick_device

    dev = pick_device(args.device)
    clip = load_model(args.model, args.pretrained, dev)
    size = clip.input_size
    batch = args.batch_size or (thread_batch_size(size, args.n, cpu_count()) if dev.type == "cpu"
                                else cpu_batch_size(size))
    tower, dtype = image_tower(clip, dev)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = make_images(tmp / "images", args.n)
        warm = make_images(tmp / "warm", 2 * batch, seed=1)

        # (a) the plain loop
        def plain(ps):
            out = []
            with torch.no_grad():
                for i in range(0, len(ps), batch):
                    x = torch.stack([clip.preprocess(Image.open(p).convert("RGB")) for p in ps[i:i + batch]])
                    out.append(F.normalize(clip.model.encode_image(x.to(dev)), dim=-1).cpu())
            return torch.cat(out).numpy()

        plain(warm[:batch])

        # (a) the plain loop, (b) dataexplore, cold cache, and (d) the model alone on ready tensors,
        # interleaved --repeat times (medians reported) so that drift in machine speed hits them alike;
        # (c) the same call as (b) again: every vector from the cache
        kw = dict(model=args.model, pretrained=args.pretrained, device=dev, batch_size=batch, progress=False)
        dx.embed(warm, **kw, cache=False)
        ready = [torch.stack([clip.preprocess(Image.open(p).convert("RGB")) for p in paths[i:i + batch]])
                 for i in range(0, len(paths), batch)]
        dtype_in = dtype or torch.float32
        with torch.inference_mode():
            tower(ready[0][:4].to(dev, dtype_in))  # warm-up
        times_a, times_b, times_c, times_d = [], [], [], []
        for rep in range(args.repeat):
            t = time.perf_counter()
            ref = plain(paths)
            times_a.append(time.perf_counter() - t)
            kw["cache_dir"] = tmp / f"cache{rep}"
            t = time.perf_counter()
            emb = dx.embed(paths, **kw)
            times_b.append(time.perf_counter() - t)
            assert emb.stats["computed"] == args.n
            t = time.perf_counter()
            hit = dx.embed(paths, **kw)
            times_c.append(time.perf_counter() - t)
            assert hit.stats["cached"] == args.n
            times_d.append(model_only(tower, ready, dev, dtype_in))
        results["e_decode_only"] = decode_only(paths, clip, dev, batch)
        results["a_plain"] = float(np.median(times_a))
        results["b_dataexplore"] = float(np.median(times_b))
        results["c_cache_hit"] = float(np.median(times_c))
        results["d_model_only"] = float(np.median(times_d))
        results["a_runs"], results["b_runs"], results["d_runs"] = times_a, times_b, times_d
        results["speedup_runs"] = [a / b for a, b in zip(times_a, times_b)]

    cos = float((ref * emb.vectors).sum(1).min())
    n = args.n
    lines = [
        f"model {args.model} ({'random weights' if not args.pretrained else args.pretrained}), {n} JPEG 640x427, "
        f"device {dev}, batch {batch}, compute dtype {str(dtype).replace('torch.', '') if dtype else 'float32'}, "
        f"torch threads {torch.get_num_threads()}, {os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}",
        "",
        "| row | seconds | images/s | ratio |",
        "|---|---|---|---|",
        f"| (a) plain loop | {results['a_plain']:.2f} | {n / results['a_plain']:.1f} | 1.00x (baseline) |",
        f"| (b) dataexplore.embed | {results['b_dataexplore']:.2f} | {n / results['b_dataexplore']:.1f} | "
        f"{results['a_plain'] / results['b_dataexplore']:.2f}x (a); "
        f"{results['d_model_only'] / results['b_dataexplore']:.0%} of (d) |",
        f"| (c) cache hit | {results['c_cache_hit']:.3f} | {n / results['c_cache_hit']:.0f} | "
        f"{results['b_dataexplore'] / results['c_cache_hit']:.0f}x faster than (b) |",
        f"| (d) model only | {results['d_model_only']:.2f} | {n / results['d_model_only']:.1f} | ceiling for (b) |",
        f"| (e) decode only | {results['e_decode_only']:.2f} | {n / results['e_decode_only']:.1f} | ceiling for (b); "
        f"(b) reaches {max(results['d_model_only'], results['e_decode_only']) / results['b_dataexplore']:.0%} "
        "of the lower ceiling |",
        "",
        f"(a) runs: {', '.join(f'{t:.2f}' for t in results['a_runs'])} s; "
        f"(b) runs: {', '.join(f'{t:.2f}' for t in results['b_runs'])} s; "
        f"(d) runs: {', '.join(f'{t:.2f}' for t in results['d_runs'])} s (medians above); (a)/(b) per round: "
        f"{', '.join(f'{r:.2f}x' for r in results['speedup_runs'])}",
        f"min cosine between (a) fp32 and (b) vectors: {cos:.4f}",
    ]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"n": n, "batch": batch, "device": str(dev), "seconds": results,
                                         "python": sys.version.split()[0], "torch": torch.__version__}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
