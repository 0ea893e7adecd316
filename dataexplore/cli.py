"""The ``dataexplore`` command line: embed, project, export-html, query, duplicates, label-errors, sample, demo.

Progress goes to stderr with a one-line summary; bad input gives a one-line error and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ._version import __version__
from .core.errors import DataexploreError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dataexplore", description="Embed and map image datasets.")
    p.add_argument("--version", action="version", version=f"dataexplore {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("embed", help="embed images with CLIP into a Parquet file (id, embedding)")
    e.add_argument("source", help="folder, .csv/.parquet table with 'filepath', or fashion-mnist[:train|test[:N]]")
    e.add_argument("--out", required=True, type=Path, help="output .parquet file")
    e.add_argument("--model", default="fashion-tiny", help="fashion-tiny (built in), an open_clip architecture, "
                   "or local-dir:/path (default: fashion-tiny)")
    e.add_argument("--pretrained", default=None, help="weights tag (downloaded) or local weights file")
    e.add_argument("--device", default="auto", help="auto, cuda, mps or cpu (default: auto)")
    e.add_argument("--batch-size", type=int, default=None)
    e.add_argument("--workers", type=int, default=None, help="decoding processes")
    e.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    e.add_argument("--decode", default="pil", choices=["pil", "torchvision"],
                   help="torchvision: decode JPEGs on the GPU with nvJPEG")
    e.add_argument("--cache-dir", default=None, help="cache folder (default: $DATAEXPLORE_CACHE_DIR or user cache)")
    e.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    e.add_argument("--failures", type=Path, default=None, help="write the failed images (id, reason) to this CSV")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="ray: a Ray Data pipeline over a cluster's GPUs, results as Parquet shards in the cache "
                        "(pip install dataexplore[scale]; default: local)")
    e.add_argument("--address", default=None, help="with --engine ray: the cluster (HOST:6379 from 'ray start "
                   "--head', ray://HOST:10001, auto); default: $RAY_ADDRESS, a local 'ray start' cluster, or a new "
                   "local Ray")

    pr = sub.add_parser("project", help="map embeddings to 2-D (id, x, y)")
    pr.add_argument("embeddings", type=Path, help="Parquet file from 'dataexplore embed'")
    pr.add_argument("--out", required=True, type=Path, help="output .parquet file")
    pr.add_argument("--method", default="umap", choices=["umap", "pca"])
    pr.add_argument("--n-neighbors", type=int, default=15)
    pr.add_argument("--min-dist", type=float, default=0.1)
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--cache-dir", default=None)
    pr.add_argument("--no-cache", action="store_true")

    h = sub.add_parser("export-html", help="write a map as one HTML file that opens without Python")
    h.add_argument("source", help="anything 'embed' accepts, or a Parquet file from 'dataexplore embed'")
    h.add_argument("--out", required=True, type=Path, help="output .html file")
    h.add_argument("--model", default="fashion-tiny")
    h.add_argument("--pretrained", default=None)
    h.add_argument("--color", default="label", help="metadata column to colour by (default: label)")
    h.add_argument("--thumbnails", action="store_true", help="embed a thumbnail per point (at most 50,000)")
    h.add_argument("--title", default=None)
    h.add_argument("--overwrite", action="store_true", help="replace an existing file")

    q = sub.add_parser("query", help="run, show or make saved queries (folders written by Query.save)")
    qs = q.add_subparsers(dest="query_command", required=True)
    qr = qs.add_parser("run", help="rank a pool of images by a saved query and write the top candidates to CSV")
    qr.add_argument("query", type=Path, help="query folder (e.g. trousers.dxq)")
    qr.add_argument("--pool", required=True,
                    help="anything 'embed' accepts, or a Parquet file from 'dataexplore embed'")
    qr.add_argument("--top", type=int, default=100, help="candidates to keep (default: 100)")
    qr.add_argument("--out", required=True, type=Path, help="output .csv file")
    qr.add_argument("--matches-only", action="store_true", help="keep only candidates above the query's threshold")
    qr.add_argument("--keep-selected", action="store_true", help="do not leave out the query's own images")
    qr.add_argument("--device", default="auto")
    qr.add_argument("--cache-dir", default=None)
    qr.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    qr.add_argument("--quiet", action="store_true", help="no progress bar")
    qsh = qs.add_parser("show", help="print what a saved query is: name, method, description, provenance")
    qsh.add_argument("query", type=Path)
    qt = qs.add_parser("text", help="save a text query (a concept with no images yet)")
    qt.add_argument("text", help='a noun phrase ("sandal") or a sentence ("a photo of a red sandal")')
    qt.add_argument("--out", required=True, type=Path, help="query folder to write")
    qt.add_argument("--model", default="fashion-tiny")
    qt.add_argument("--pretrained", default=None)
    qt.add_argument("--name", default=None)
    qt.add_argument("--overwrite", action="store_true")

    _quality_parsers(sub)

    d = sub.add_parser("demo", help="embed and map Fashion-MNIST offline, then open the quickstart in JupyterLab")
    d.add_argument("--n", type=int, default=10000, help="test images to use (default: all 10000)")
    d.add_argument("--no-lab", action="store_true", help="prepare the data only; do not start JupyterLab")
    d.add_argument("--port", type=int, default=None, help="JupyterLab port (default: a free one)")
    return p


def _quality_parsers(sub) -> None:
    """``duplicates``, ``label-errors`` and ``sample`` (run by :mod:`dataexplore.cli_quality`)."""
    def common(c, out_help: str) -> None:
        c.add_argument("source", help="anything 'embed' accepts, or a Parquet file from 'dataexplore embed'")
        c.add_argument("--out", required=True, type=Path, help=out_help)
        c.add_argument("--model", default="fashion-tiny", help="the model to embed with (default: fashion-tiny)")
        c.add_argument("--pretrained", default=None)
        c.add_argument("--metadata", type=Path, default=None,
                       help="a .csv/.parquet table with an 'id' column: more columns for the samples (e.g. labels)")
        c.add_argument("--cache-dir", default=None)
        c.add_argument("--overwrite", action="store_true", help="replace existing output files")
        c.add_argument("--quiet", action="store_true", help="no progress bar")

    du = sub.add_parser("duplicates", help="exact and near-duplicate groups in a set, or leaks across two sets (CSV)")
    common(du, "output .csv: one row per member of each group (group, id, set, similarity, ...)")
    du.add_argument("--other", default=None, help="a second set (e.g. the test split): report what the sets share")
    du.add_argument("--threshold", type=float, default=None, help="cosine similarity for near-duplicates "
                    "(default: calibrated for the model)")
    du.add_argument("--keep", type=Path, default=None,
                    help="also write the ids to keep (one per group, and every sample without copies) to this .csv")

    le = sub.add_parser("label-errors", help="samples whose label looks wrong, with a suggested label (CSV)")
    common(le, "output .csv: one row per candidate (id, label, suggested, score, neighbours)")
    le.add_argument("--label", default="label", help="the label column (default: label)")
    le.add_argument("--all", action="store_true", help="write every sample's score, not only the candidates")

    sa = sub.add_parser("sample", help="pick N samples to label: diverse, typical, uncertain or random (CSV)")
    common(sa, "output .csv: the picks in order (rank, id, score, metadata)")
    sa.add_argument("-n", type=int, required=True, help="how many to pick")
    sa.add_argument("--strategy", default="diverse",
                    choices=["diverse", "typical", "uncertain", "uncertain-diverse", "random"])
    sa.add_argument("--balance-by", default=None, help="comma-separated columns to balance the picks along")
    sa.add_argument("--bins", type=int, default=4, help="quantile buckets of numeric columns (default: 4)")
    sa.add_argument("--probabilities", type=Path, default=None,
                    help="the model's class probabilities: a .csv/.parquet with 'id' and one column per class")
    sa.add_argument("--already", default=None,
                    help="samples labelled already (a .csv with 'id', or anything 'embed' accepts)")
    sa.add_argument("--report", type=Path, default=None, help="also write the balance report to this .csv")
    sa.add_argument("--seed", type=int, default=0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dataexplore`` console script."""
    args = _parser().parse_args(argv)
    try:
        from .cli_quality import COMMANDS

        return {"embed": _embed, "project": _project, "demo": _demo, "export-html": _export_html,
                "query": _query, **COMMANDS}[args.command](args)
    except DataexploreError as exc:
        print(f"dataexplore: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dataexplore: interrupted; finished batches are cached and will not be recomputed", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"dataexplore: error: {exc}", file=sys.stderr)
        return 2


def _export_html(args) -> int:
    from .app import Explorer
    from .embedding.inputs import as_analysed
    from .projection import project

    if args.out.exists() and not args.overwrite:
        raise DataexploreError(f"{args.out} exists; pass --overwrite to replace it")
    emb = as_analysed(args.source, args.model, pretrained=args.pretrained)
    proj = project(emb)
    table = emb.table
    color = args.color if args.color in table.columns else None
    ex = Explorer(proj, table=table, samples=emb.samples, rows=emb.rows, color=color,
                  provenance={"source": getattr(emb.samples, "name", "") or str(args.source)})
    out = ex.to_html(args.out, thumbnails=args.thumbnails, title=args.title, overwrite=args.overwrite)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, {len(ex):,} points)", file=sys.stderr)
    return 0


def _query(args) -> int:
    from .query import Query, load_query

    if args.query_command == "text":
        q = Query.from_text(args.text, args.model, args.pretrained, name=args.name)
        out = q.save(args.out, overwrite=args.overwrite)
        print(f"saved text query {q.name!r} -> {out}", file=sys.stderr)
        return 0
    q = load_query(args.query)
    if args.query_command == "show":
        meta = q.to_dict()
        print(f"{q!r}\nthreshold: {q.threshold}\nexemplars: {', '.join(q.exemplars[:8])}")
        print(f"provenance: {meta['provenance']}")
        return 0
    if args.out.suffix.lower() != ".csv":
        raise DataexploreError(f"--out must be a .csv file, got {args.out}")
    if args.out.exists() and not args.overwrite:
        raise DataexploreError(f"{args.out} exists; pass --overwrite to replace it")
    res = q.search(args.pool, top=args.top, exclude_selected=not args.keep_selected, matches_only=args.matches_only,
                   progress=not args.quiet, device=args.device, cache_dir=args.cache_dir)
    res.to_csv(args.out, overwrite=args.overwrite)
    print(f"{res!r} -> {args.out}", file=sys.stderr)
    return 0


def _embed(args) -> int:
    from .embedding.local import embed

    if args.out.suffix.lower() not in (".parquet", ".pq"):
        raise DataexploreError(f"--out must be a .parquet file, got {args.out}")
    if args.address is not None and args.engine != "ray":
        raise DataexploreError("--address is only used with --engine ray")
    emb = embed(args.source, args.model, args.pretrained, device=args.device, batch_size=args.batch_size,
                num_workers=args.workers, precision=args.precision, decode=args.decode,
                cache=not args.no_cache, cache_dir=args.cache_dir, progress=not args.quiet,
                engine=args.engine, ray_address=args.address)
    emb.save(args.out)
    if args.failures is not None:
        from .core.io import csv_safe_frame

        csv_safe_frame(emb.failures).to_csv(args.failures, index=False)
    s = emb.stats
    print(f"embedded {len(emb) + s['failed']} images: {s['computed']} computed, {s['cached']} from cache, "
          f"{s['failed']} failed -> {args.out}", file=sys.stderr)
    for _, row in emb.failures.head(5).iterrows():
        print(f"  failed: {row['id']}: {row['reason']}", file=sys.stderr)
    if len(emb.failures) > 5:
        print(f"  ... and {len(emb.failures) - 5} more (use --failures FILE.csv)", file=sys.stderr)
    return 0


def _project(args) -> int:
    from .core.embeddings import Embeddings
    from .projection import Projection

    emb = Embeddings.load(args.embeddings)
    proj = Projection(args.method, n_neighbors=args.n_neighbors, min_dist=args.min_dist,
                      random_state=args.seed, cache=not args.no_cache, cache_dir=args.cache_dir).fit(emb)
    proj.save(args.out)
    skipped = f", {len(emb.failures)} without embedding skipped" if len(emb.failures) else ""
    origin = "from cache" if proj.from_cache_ else f"computed with {proj.backend_}"
    print(f"projected {len(emb)} points ({args.method}, {origin}{skipped}) -> {args.out}", file=sys.stderr)
    return 0


def _demo(args) -> int:
    from .cli_demo import check_port, quickstart_notebook, start_lab
    from .embedding.local import embed
    from .projection import project

    if args.port is not None and not args.no_lab:
        check_port(args.port)  # before minutes of embedding, not after
    source = f"fashion-mnist:test:{args.n}"
    print(f"1/3 embedding {source} with fashion-tiny (cached after the first run)", file=sys.stderr)
    emb = embed(source, model="fashion-tiny")
    s = emb.stats
    print(f"    {s['computed']} computed, {s['cached']} from cache, {s['failed']} failed", file=sys.stderr)
    pool = f"fashion-mnist:train:{args.n}"
    print(f"2/3 embedding {pool}, the pool the notebook's query searches", file=sys.stderr)
    s = embed(pool, model="fashion-tiny").stats
    print(f"    {s['computed']} computed, {s['cached']} from cache, {s['failed']} failed", file=sys.stderr)
    print("3/3 projecting with UMAP (cached after the first run)", file=sys.stderr)
    proj = project(emb)
    print(f"    {len(proj.embedding_)} points, {'from cache' if proj.from_cache_ else 'computed'}", file=sys.stderr)
    notebook = quickstart_notebook()
    if args.no_lab:
        print(f"ready: open {notebook} in JupyterLab", file=sys.stderr)
        return 0
    return start_lab(notebook, args.port, dict(os.environ, DATAEXPLORE_DEMO_N=str(args.n)))
