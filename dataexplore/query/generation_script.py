"""The script :meth:`GenerationRequest.to_diffusers_script` writes: it runs a request's JSONL with
``diffusers``. The package never imports ``diffusers``; the script does, where it runs."""

from __future__ import annotations

import json

TEMPLATE = '''\
"""Generate the images of the dataexplore generation request {name} with diffusers.

Needs: pip install diffusers transformers accelerate torch
Run:   python {script} --out generated/ [--model-id ID] [--device cuda] [--steps N] [--guidance G]
Each JSONL line asks for n images of one prompt; image k of line i is saved as <out>/p<i>-<k>.png
(zero-padded), seeded with the line's seed + k, and skipped when it already exists (rerun to
resume). <out>/{manifest} records the request, version and prompts the images are for: a folder
made for other prompts is refused, so old images are never taken for new prompts. Then check them:
dx.check_generated(dx.load_generation("<request folder>"), "generated/").
"""

import argparse
import json
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
JSONL = {jsonl}
MODEL_ID = {model_id}


def read_lines(path):
    """The request's prompts, one dict per JSONL line (blank lines skipped)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                item = json.loads(line)
                if not isinstance(item.get("prompt"), str) or int(item.get("n", -1)) < 0:
                    raise SystemExit(f"{{path}} line {{number}}: needs a 'prompt' and a count 'n'")
                out.append(item)
    return out


def plan(lines):
    """(file name, prompt, negative prompt, seed) of every image to make, in order."""
    for i, item in enumerate(lines):
        index = int(item.get("prompt_index", i))
        for k in range(int(item["n"])):
            yield (f"p{{index:03d}}-{{k:04d}}.png", item["prompt"], item.get("negative_prompt") or None,
                   int(item.get("seed", 0)) + k)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="generated", help="folder for the PNGs")
    parser.add_argument("--jsonl", default=str(HERE / JSONL) if not os.path.isabs(JSONL) else JSONL)
    parser.add_argument("--model-id", default=MODEL_ID)
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: cuda when available)")
    parser.add_argument("--steps", type=int, default=None, help="inference steps (the pipeline's default)")
    parser.add_argument("--guidance", type=float, default=None, help="guidance scale (the pipeline's default)")
    args = parser.parse_args(argv)

    import torch
    from diffusers import AutoPipelineForText2Image

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device == "cuda" else torch.float32
    pipe = AutoPipelineForText2Image.from_pretrained(args.model_id, torch_dtype=dtype).to(device)
    extra = {{}}
    if args.steps is not None:
        extra["num_inference_steps"] = args.steps
    if args.guidance is not None:
        extra["guidance_scale"] = args.guidance
    lines = read_lines(args.jsonl)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    made_for = {{"request": lines[0].get("request") if lines else None,
                "version": lines[0].get("version") if lines else None, "prompts": [x["prompt"] for x in lines]}}
    manifest = out / "{manifest}"
    if manifest.exists():
        if json.loads(manifest.read_text(encoding="utf-8")) != made_for:
            raise SystemExit(f"{{out}} holds images made for other prompts (see {{manifest.name}}): use a new --out")
    else:
        manifest.write_text(json.dumps(made_for, ensure_ascii=False), encoding="utf-8")
    made = 0
    for name, prompt, negative, seed in plan(lines):
        if (out / name).exists():
            continue
        generator = torch.Generator(device=device).manual_seed(seed)
        image = pipe(prompt=prompt, negative_prompt=negative, generator=generator, **extra).images[0]
        partial = out / (".partial-" + name)  # a run stopped mid-save leaves no truncated image to skip later
        image.save(partial, format="PNG")
        os.replace(partial, out / name)
        made += 1
    print(f"{{made}} images written to {{out}}")


if __name__ == "__main__":
    main()
'''


#: What the script writes into its output folder: the request, version and prompts its images are for.
MANIFEST = "dataexplore-images.json"


def script_text(model_id: str, jsonl: str, name: str) -> str:
    """The script's source, with the model id, the JSONL path and the request's name filled in
    (as JSON string literals: data, never code)."""
    return TEMPLATE.format(name=json.dumps(name)[1:-1].replace('"""', ""), script="this script",
                           jsonl=json.dumps(str(jsonl)), model_id=json.dumps(str(model_id)), manifest=MANIFEST)
