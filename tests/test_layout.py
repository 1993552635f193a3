"""The code's shape stays as the layout promises: short functions, and imports at the top of each module except
where a reason is written here (the import-linter contracts in pyproject.toml check the layers themselves)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

MAX_FUNCTION_LINES = 60

# What may be imported inside a function, and why.
DEFERRED = {
    **dict.fromkeys(("onnx", "onnxruntime", "ray", "setfit", "spacy"), "an optional extra"),
    "fcntl": "POSIX only",
    **dict.fromkeys(
        ("torch", "transformers", "matplotlib", "datasets", "huggingface_hub", "sklearn", "scipy"),
        "seconds to import: a command's usage errors and --help come first, and plots or the Hub only when used",
    ),
    **dict.fromkeys(
        ("src.model", "src.model_folder", "src.predict", "src.predict.engine", "src.predict.ray_engine"),
        "imports torch: kept out of the commands until their arguments are checked",
    ),
}


def functions() -> list[tuple[Path, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append((path.relative_to(ROOT), node))
    return found


def test_no_function_is_longer_than_60_lines() -> None:
    long = [
        f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, node in functions()
        if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_imports_inside_functions_have_a_reason() -> None:
    def allowed(name: str) -> bool:
        return any(name == key or name.startswith(f"{key}.") for key in DEFERRED)

    unexplained = []
    for path, node in functions():
        for sub in ast.walk(node):
            if isinstance(sub, ast.ImportFrom):
                names = [("." * sub.level) + (sub.module or "")]
            elif isinstance(sub, ast.Import):
                names = [alias.name for alias in sub.names]
            else:
                continue
            unexplained += [f"{path}:{sub.lineno} {node.name} imports {n}" for n in names if not allowed(n)]
    assert unexplained == []
