"""``fashion-gen``: a small text-conditional image generator that ships with dataexplore.

Why: a generation request (prompts in words, see the gap → generation workflow) needs a
generator to run on offline machines (CI, the demo), the way ``fashion-tiny`` is a CLIP that
needs no download. ``fashion-gen`` is the decoder (with its learned conditional prior) of a
conditional VAE trained on the Fashion-MNIST train split by ``train_fashion_gen.py``
(2,000 steps; the shipped weights took 1,075 s on a 2-core CPU shared with other jobs,
``train_seconds`` in ``fashion-gen/metrics.json``; 0.95 MB of fp16 weights). It is conditioned
on ``fashion-tiny``'s text embedding of a caption, so any prompt string runs::

    prompt --fashion-tiny text tower--> 128-d unit vector e
    eps ~ N(0, I) from the seed;  z = mu(e) + sigma(e) * eps;  image = sigmoid(decoder(z, e))

The 16-d ``eps`` is drawn from the seed, the same for every prompt. It learned from the 80 captions
``template.format(class phrase)`` that ``fashion-tiny`` was trained with (8 templates × 10
classes). Other wordings work only as far as ``fashion-tiny``, whose text tower saw nothing but
those captions, puts them near them: measured, "trousers" and "a photo of trousers" give
trousers and "a photo of a boot" ankle boots, but "a photo of a trouser", "pants", "tshirt" or
"a dog" give a mix of upper-body garments. Prompts should use the class phrases
(``CLASS_PHRASES`` of ``train_fashion_tiny.py``).
It can only draw the ten Fashion-MNIST classes, in their 28×28 grayscale style.

Guidance and negative prompts. During training the condition was replaced by a zero vector
(the *null* condition) for 10% of the images, so the decoder also knows an unconditional
image. At generation the decoder's pixel logits for the prompt, ``l(p)``, and for a reference
``r`` (same ``eps``, each through its own prior) are combined as in classifier-free guidance::

    logits = l(r) + guidance · (l(p) − l(r)),   r = negative prompt if given, else null

``guidance=1`` is the plain conditional decoder; ``guidance > 1`` pushes the image away from
the reference: from the average image without a negative prompt, from what the negative prompt
describes with one. With ``guidance=1`` a negative prompt has no effect. The effect on
Fashion-MNIST (e.g. "a photo of a shirt" with negative "t-shirt") is measured by the training
script and kept in ``fashion-gen/metrics.json`` under ``"negative_prompt"``.

Examples
--------
>>> from dataexplore.models.generator import Generator
>>> gen = Generator.load("fashion-gen")  # doctest: +SKIP
>>> images = gen.generate(["a photo of a sandal", "a photo of a bag"], n=8)  # doctest: +SKIP
>>> images.shape, images.dtype  # doctest: +SKIP
((16, 28, 28), dtype('uint8'))
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.errors import DataexploreError, ModelError
from .device import pick_device

#: Built-in generators: name -> folder with ``config.json`` and ``generator.safetensors``.
BUILTIN_GENERATORS = {"fashion-gen": Path(__file__).parent / "fashion-gen"}
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "generator.safetensors"
#: Keys ``config.json`` must hold, with their types.
_CONFIG_KEYS: dict[str, type | tuple[type, ...]] = {
    "format": str, "text_model": str, "text_weights": str, "embed_dim": int, "latent_dim": int, "cond_dim": int,
    "hidden": int, "channels": int, "image_size": int, "guidance": (int, float)}
FORMAT = "dataexplore-generator/1"


def build_decoder(embed_dim: int, latent_dim: int, cond_dim: int, hidden: int, channels: int):
    """The decoder network: ``(z, text vector) -> 28×28 pixel logits`` (a torch module).

    The condition goes through a small MLP and is concatenated with ``z``; two fully connected
    layers make a ``channels×7×7`` map that two transposed convolutions bring to 28×28. A
    conditional prior ``p(z | text vector)`` (``prior_params``) is learned with it, so sampling
    draws ``z`` where images of the prompted kind lie (``sample``).
    """
    import torch
    from torch import nn

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.cond = nn.Sequential(nn.Linear(embed_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
            self.fc = nn.Sequential(nn.Linear(latent_dim + cond_dim, hidden), nn.SiLU(),
                                    nn.Linear(hidden, channels * 49), nn.SiLU())
            self.up = nn.Sequential(
                nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1), nn.SiLU(),        # 7 -> 14
                nn.ConvTranspose2d(channels // 2, channels // 2, 4, 2, 1), nn.SiLU(),   # 14 -> 28
                nn.Conv2d(channels // 2, 1, 3, 1, 1),
            )
            self.channels = channels

            self.prior = nn.Sequential(nn.Linear(cond_dim, hidden), nn.SiLU(), nn.Linear(hidden, 2 * latent_dim))

        def prior_params(self, e: torch.Tensor):
            """Mean and log-variance of the conditional prior ``p(z | text vector)``."""
            mu, logvar = self.prior(self.cond(e)).chunk(2, dim=1)
            return mu, logvar.clamp(-8, 4)

        def sample(self, eps: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
            """Pixel logits for standard-normal noise ``eps`` pushed through the prior of ``e``."""
            mu, logvar = self.prior_params(e)
            return self(mu + eps * (0.5 * logvar).exp(), e)

        def forward(self, z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
            h = self.fc(torch.cat([z, self.cond(e)], dim=1))
            return self.up(h.view(-1, self.channels, 7, 7))[:, 0]

    return Decoder()


class Generator:
    """A loaded text-conditional generator (``fashion-gen`` or a folder written by its trainer).

    Use :meth:`load`; then :meth:`generate` turns prompts into 28×28 grayscale images.

    Attributes
    ----------
    config : dict
        The validated ``config.json`` (architecture, text model and its weights fingerprint,
        default guidance).
    device : torch.device
    identity : dict
        ``name`` and the ``weights`` hash: what a generation request records as its model.
    """

    def __init__(self, decoder: Any, config: dict, clip: Any, device: Any, name: str):
        self.decoder = decoder
        self.config = config
        self.clip = clip
        self.device = device
        from . import weights_fingerprint

        self.identity = {"name": name, "weights": weights_fingerprint(decoder), "text_model": config["text_model"]}

    @classmethod
    def load(cls, name: str | os.PathLike = "fashion-gen", device: Any = "auto") -> "Generator":
        """Load a generator by name (``"fashion-gen"``) or from a folder.

        Parameters
        ----------
        name : str or path
            ``"fashion-gen"`` (built in), or a folder holding ``config.json`` and
            ``generator.safetensors`` (as written by ``train_fashion_gen.py --out``).
        device : {"auto", "cuda", "mps", "cpu"} or torch.device
            ``"auto"`` picks cuda, then mps, then cpu.

        Raises
        ------
        dataexplore.ModelError
            Unknown name, missing folder or files, a malformed config, weights that do not
            fit the config, or a text model whose weights differ from the ones it was trained on.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from . import load_model, weights_fingerprint

        key = str(name)
        folder = BUILTIN_GENERATORS.get(key, Path(key).expanduser())
        if not folder.is_dir():
            raise ModelError(f"no generator {key!r}: use 'fashion-gen' or a folder with {CONFIG_FILE} "
                             f"and {WEIGHTS_FILE}")
        for file in (CONFIG_FILE, WEIGHTS_FILE):
            if not (folder / file).is_file():
                raise ModelError(f"generator folder {folder} has no {file} (train one with "
                                 f"python -m dataexplore.models.train_fashion_gen --out {folder})")
        config = _read_config(folder / CONFIG_FILE)
        dev = pick_device(device)
        decoder = build_decoder(config["embed_dim"], config["latent_dim"], config["cond_dim"], config["hidden"],
                                config["channels"])
        try:
            state = load_file(str(folder / WEIGHTS_FILE))
            decoder.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        except (SafetensorError, RuntimeError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"generator weights in {folder} do not fit its {CONFIG_FILE}: {first}") from None
        decoder = decoder.to(dev).eval()
        clip = load_model(config["text_model"], device=dev)
        if weights_fingerprint(clip.model) != config["text_weights"]:
            raise ModelError(f"generator in {folder} was trained on other {config['text_model']!r} weights than "
                             "the ones installed: retrain it with python -m dataexplore.models.train_fashion_gen")
        return cls(decoder, config, clip, dev, "fashion-gen" if key in BUILTIN_GENERATORS else f"local-dir:{folder}")

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        """The text vectors the decoder is conditioned on (``len(prompts)×embed_dim``, unit norm)."""
        from . import embed_prompts

        return embed_prompts(self.clip, list(prompts))

    def generate(self, prompts: str | Sequence[str], n: int = 16, *, negative: str | Sequence[str] | None = None,
                 guidance: float | None = None, seed: int = 0, batch_size: int = 512,
                 progress: bool | None = None) -> np.ndarray:
        """Generate ``n`` images for each prompt.

        Parameters
        ----------
        prompts : str or sequence of str
            One prompt, or several; each is encoded by ``fashion-tiny``'s text tower.
        n : int
            Images *per prompt*.
        negative : str or sequence of str, optional
            What the images should not look like: one negative prompt for all prompts, or one
            per prompt. Takes the place of the null condition in guidance (see the module
            docstring); has no effect with ``guidance=1``.
        guidance : float, optional
            Guidance scale (>= 1); default the value in ``config.json``.
        seed : int
            Same seed, prompts and ``n`` -> the same images, whatever ``batch_size`` or device
            (up to floating-point differences between devices). Image ``j`` of every prompt
            uses the same latent ``z_j``, so prompts differ only by their condition.
        batch_size : int
            Images decoded at once.
        progress : bool, optional
            Show a progress bar; default: when more than 10 batches.

        Returns
        -------
        numpy.ndarray
            ``uint8`` array of shape ``(len(prompts) * n, 28, 28)``, prompt-major: rows
            ``i*n ... i*n+n-1`` belong to ``prompts[i]``.

        Raises
        ------
        dataexplore.DataexploreError
            No prompts, an empty or non-string prompt, ``n < 1``, a negative list of the wrong
            length, ``guidance < 1`` or ``batch_size < 1``.
        """
        import torch
        from tqdm.auto import tqdm

        prompts = _as_prompts(prompts, "prompts")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise DataexploreError(f"n (images per prompt) must be an integer >= 1, got {n!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise DataexploreError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        scale = float(self.config["guidance"] if guidance is None else guidance)
        if not np.isfinite(scale) or scale < 1:
            raise DataexploreError(f"guidance must be a number >= 1, got {guidance!r}")
        negatives = None
        if negative is not None:
            negatives = _as_prompts(negative, "negative")
            if len(negatives) == 1:
                negatives = negatives * len(prompts)
            elif len(negatives) != len(prompts):
                raise DataexploreError(f"give one negative prompt, or one per prompt ({len(prompts)}), "
                                       f"got {len(negatives)}")
        n = int(n)
        pos = torch.as_tensor(self.embed(prompts))
        ref = torch.as_tensor(self.embed(negatives)) if negatives else torch.zeros_like(pos)
        z = torch.randn(n, self.config["latent_dim"], generator=torch.Generator().manual_seed(int(seed)))
        total = len(prompts) * n
        out = np.empty((total, 28, 28), np.uint8)
        starts = range(0, total, int(batch_size))
        show = len(starts) > 10 if progress is None else progress
        with torch.inference_mode():
            for start in tqdm(starts, desc="generating", unit="batch", disable=not show, leave=False):
                rows = torch.arange(start, min(start + int(batch_size), total))
                which, j = rows // n, rows % n
                zb = z[j].to(self.device)
                logits = self.decoder.sample(zb, pos[which].to(self.device))
                if scale != 1.0:
                    base = self.decoder.sample(zb, ref[which].to(self.device))
                    logits = base + scale * (logits - base)
                pixels = torch.sigmoid(logits.float()).mul(255).round().clamp(0, 255)
                out[start:start + len(rows)] = pixels.to(torch.uint8).cpu().numpy()
        return out

    def __repr__(self) -> str:
        return f"Generator({self.identity['name']!r}, device={str(self.device)!r})"


def _as_prompts(value: Any, what: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    try:
        items = list(items)
    except TypeError:
        raise DataexploreError(f"{what} must be a string or a list of strings, got {type(value).__name__}") from None
    if not items:
        raise DataexploreError(f"{what} is empty: give at least one prompt")
    for p in items:
        if not isinstance(p, str) or not p.strip():
            raise DataexploreError(f"every entry of {what} must be a non-empty string, got {p!r}")
    return items


def _read_config(path: Path) -> dict:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read generator config {path}: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelError(f"{path} is not a dataexplore generator config (expected format {FORMAT!r})")
    for key, kind in _CONFIG_KEYS.items():
        value = config.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ModelError(f"generator config {path}: {key!r} is missing or not {getattr(kind, '__name__', kind)}")
    for key in ("embed_dim", "latent_dim", "cond_dim", "hidden", "channels"):
        if not 1 <= config[key] <= 4096:
            raise ModelError(f"generator config {path}: {key!r} = {config[key]} is out of range")
    if config["image_size"] != 28 or config["channels"] % 2:
        raise ModelError(f"generator config {path}: only 28×28 images and an even channel count are supported")
    if config["guidance"] < 1:
        raise ModelError(f"generator config {path}: guidance must be >= 1")
    return config
