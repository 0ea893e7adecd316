import json
import subprocess
import sys
import tomllib
from pathlib import Path

import dataexplore

ROOT = Path(__file__).resolve().parent.parent


def test_import_is_light():
    """`import dataexplore` must not pull in torch, open_clip or umap (they take seconds)."""
    code = ("import sys, dataexplore; heavy = [m for m in ('torch', 'open_clip', 'umap', 'pandas', 'sklearn') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api_resolves_lazily():
    for name in ("load", "embed", "embed_text", "project", "Projection", "Embeddings", "Samples", "datasets"):
        assert getattr(dataexplore, name) is not None
    assert "embed" in dir(dataexplore)


def test_all_matches_the_lazy_table_and_the_type_checking_imports():
    """`__all__` is written out for linters; it must list exactly the eager names and the `_LAZY` table, and the
    `if TYPE_CHECKING:` imports must name the same objects as `_LAZY` does."""
    import ast

    eager = ["__version__", "DataexploreError", "MissingDependencyError", "ModelError", "SourceError"]
    assert len(set(dataexplore.__all__)) == len(dataexplore.__all__)
    assert sorted(dataexplore.__all__) == sorted(eager + list(dataexplore._LAZY))

    tree = ast.parse(Path(dataexplore.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    typed = {}
    for node in ast.walk(block):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                typed[alias.asname or alias.name] = (node.module or "", alias.name)
    assert set(typed) == set(dataexplore._LAZY)
    for name, (module, attribute) in dataexplore._LAZY.items():
        source, imported = typed[name]
        if attribute is None:  # a module: `from .a import b` names module a.b
            assert ".".join(filter(None, (source, imported))) == module, name
        else:
            assert (source, imported) == (module, attribute), name


def test_console_script_and_version():
    out = subprocess.run([sys.executable, "-m", "dataexplore", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and dataexplore.__version__ in out.stdout
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["dataexplore"] == "dataexplore.cli:main"
    assert set(meta["project"]["optional-dependencies"]) >= {"fiftyone", "scale", "dev"}


def test_fashion_tiny_ships_with_metrics():
    folder = ROOT / "dataexplore" / "models" / "fashion-tiny"
    weights = folder / "open_clip_model.safetensors"
    assert weights.is_file() and weights.stat().st_size < 20_000_000
    assert json.loads((folder / "metrics.json").read_text())["zero_shot_accuracy_test"] >= 0.75


def test_functions_are_not_shadowed_by_submodules():
    """Importing any submodule first must not turn `dx.embed`/`dx.project` into modules."""
    code = ("import importlib, pkgutil, dataexplore as dx\n"
            "for m in pkgutil.iter_modules(dx.__path__):\n"
            "    m.name != '__main__' and importlib.import_module('dataexplore.' + m.name)\n"
            "print(all(callable(getattr(dx, n)) for n in ('embed', 'embed_text', 'project', 'load')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_js_bundle_is_packaged_and_versions_match():
    pkg = json.loads((ROOT / "js" / "package.json").read_text())
    assert pkg["version"] == dataexplore.__version__
    bundle = ROOT / "dataexplore" / "widget" / "static" / "explorer.js"
    assert bundle.is_file() and "dxToPixel" in bundle.read_text()


def test_public_api_is_documented_with_examples():
    """Every public function and class says what it does and shows how (numpydoc Examples)."""
    import inspect

    undocumented = []
    for name in dataexplore.__all__:
        obj = getattr(dataexplore, name)
        if inspect.ismodule(obj) or name.startswith("__") or name.endswith("Error"):
            continue
        if "Examples\n    --------" not in (obj.__doc__ or "") and "Examples\n--------" not in inspect.getdoc(obj):
            undocumented.append(name)
        if inspect.isclass(obj):
            undocumented += [f"{name}.{m}" for m, f in vars(obj).items()
                             if not m.startswith("_") and callable(f) and not inspect.getdoc(f)]
    assert not undocumented
