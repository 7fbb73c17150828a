"""Every shipped config parses, passes the key check, stays one base deep and builds its model."""
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from pc_kd.engine import check_config_keys
from pc_kd.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
ALL_CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.py") if "_base_" not in p.parts)
# Runner configs (model, data, evaluator) and experiment settings (a ``settings`` dict read by a tool: the
# drive-segment_* files of configs/drive_and_segment/, configs/partdistill/, configs/act/ and configs/recon/, read by
# tools/demo_*.py)
SETTINGS = [p for p in ALL_CONFIGS if "settings" in Config.fromfile(p)]
CONFIGS = [p for p in ALL_CONFIGS if p not in SETTINGS]


def _bases(path):
    """The files a config's ``_base_`` names (read from its code: comments may quote any file)."""
    import ast

    tree = ast.parse(path.read_text())
    node = next((n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "_base_"),
                None)
    if node is None:
        return []
    return [node.value.value] if isinstance(node.value, ast.Constant) else [e.value for e in node.value.elts]


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(ROOT / "configs")) for p in CONFIGS])
def test_config_builds_its_model(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # distillation configs name their student / teacher configs from the repository root
    cfg = Config.fromfile(path)
    check_config_keys(cfg, str(path))
    for base in _bases(path):
        assert "_base_" not in (path.parent / base).read_text(), f"{base}: configs are one base deep"
    init_default_scope("pc_kd")
    if cfg.model.type == "BEVDistiller":
        cfg.model.teacher_ckpt = None  # the teacher detector is trained by its supervised config first
    elif cfg.model.get("teacher"):
        cfg.model.teacher.pretrained = None  # teacher weights are made by tools/train_image_teacher.py
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert cfg.get("val_evaluator") and cfg.get("train_dataloader")


@pytest.mark.parametrize("path", SETTINGS, ids=[str(p.relative_to(ROOT / "configs")) for p in SETTINGS])
def test_settings_config_names_only_known_settings(path):
    from dataclasses import fields

    from pc_kd.experiments import drive_segment, masked_pretraining, partdistill

    Settings = {"drive_and_segment": drive_segment.Settings, "partdistill": partdistill.Settings,
                "act": masked_pretraining.Settings, "recon": masked_pretraining.Settings}[path.parent.name]
    settings = Config.fromfile(path).settings
    known = {f.name for f in fields(Settings)}
    assert set(settings) <= known, f"{path.name}: unknown settings {sorted(set(settings) - known)}"
    Settings(**settings)
    assert "model" not in Config.fromfile(path)


def _extras():
    """setup.py's EXTRAS dict literal (read, not executed: running setup.py would call setup())."""
    import ast

    tree = ast.parse((ROOT / "setup.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "EXTRAS")
    return ast.literal_eval(node.value)


def test_every_teacher_package_a_config_names_is_in_an_install_extra():
    needs = {"TimmTeacher": "timm", "TorchvisionTeacher": "torchvision"}
    extras = " ".join(r for reqs in _extras().values() for r in reqs)
    named = set()
    for path in CONFIGS:
        text = str(Config.fromfile(path).to_dict())
        named |= {pkg for cls, pkg in needs.items() if cls in text}
    assert "timm" in named  # the ScanNet / S3DIS configs use a timm teacher
    for pkg in named - {"torchvision"}:  # torchvision comes with timm, matched to the user's torch by hand
        assert pkg in extras, f"configs use {pkg} but no extra in setup.py installs it"
    assert "timm" in " ".join(_extras()["teachers"])
