"""Layers only look down: every ``import`` in pc_kd's source (at module level or inside a function) is read from
its syntax tree and checked against the layering of docs (design: ops, projection, structures, voxel and evaluation
import no datasets, models, engine or experiments; the engine imports no models; nothing imports the experiments
layer but itself)."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pc_kd"
LOW = ("ops", "projection", "structures", "voxel", "evaluation")
RULES = {**{low: ("datasets", "models", "engine", "experiments") for low in LOW},
         "engine": ("models", "experiments")}


def _imports(path: Path):
    """(line, module) of every pc_kd import in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def _layer(module: str):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "pc_kd" else None


@pytest.mark.parametrize("layer", sorted({*RULES, "other"}))
def test_layers_only_look_down(layer):
    folders = [PACKAGE / layer] if layer != "other" else [p for p in PACKAGE.iterdir() if p.is_dir()
                                                          and p.name not in RULES and p.name != "experiments"]
    forbidden = RULES.get(layer, ("experiments",))
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            for line, module in _imports(path):
                if _layer(module) in forbidden:
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not found, "\n".join(found)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from pc_kd.models.losses import response_loss\n    import pc_kd.engine\n")
    assert [m for _, m in _imports(source)] == ["pc_kd.models.losses", "pc_kd.engine"]
