"""The ``pc-kd`` command: installed as a console script, dispatches to the tools with their own options,
names unknown subcommands, lists the benchmarks, and ``doctor`` reports this machine."""
import importlib.metadata as metadata
import os
import subprocess
import sys
from pathlib import Path

import torch

from pc_kd.cli import TOOLS, main
from pc_kd.doctor import report

ROOT = Path(__file__).resolve().parents[1]


def _pc_kd(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "pc_kd", *args], cwd=ROOT, capture_output=True, text=True, env=env,
                         timeout=600)
    return out.returncode, out.stdout + out.stderr


def test_the_console_script_is_installed_and_points_at_the_cli():
    scripts = [ep for ep in metadata.entry_points(group="console_scripts") if ep.name == "pc-kd"]
    assert scripts and scripts[0].value == "pc_kd.cli:main", "reinstall: pip install -e . (make install)"


def test_every_subcommand_runs_an_existing_tool():
    for name, (script, about) in TOOLS.items():
        assert (ROOT / "tools" / script).is_file(), name
        assert about


def test_a_subcommand_passes_its_arguments_to_the_tool(capsys):
    try:
        code = main(["train", "--help"])
    except SystemExit as stop:  # argparse's --help inside the tool ends with SystemExit(0), caught by the cli
        code = stop.code
    out = capsys.readouterr().out
    assert code == 0 and "--resume" in out and "--cfg-options" in out
    assert out.startswith("usage: pc-kd train "), out[:200]  # the command the user typed, not train.py


def test_demo_bev_help_lists_each_distillation_path_once(capsys):
    try:
        code = main(["demo-bev", "--help"])
    except SystemExit as stop:
        code = stop.code
    out = capsys.readouterr().out
    assert code == 0 and out.count("fusion_to_lidar_null_feature") == 1, out


def test_init_weights_quietly_keeps_mmengines_per_parameter_report_off_the_console():
    import logging

    from mmengine.logging import MMLogger
    from mmengine.model import BaseModule

    from pc_kd.experiments.common import init_weights_quietly

    class Tiny(BaseModule):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 2)

    logged = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    logger = MMLogger.get_instance("pc_kd_test_init_weights")  # the current logger, without a log file
    logger.addHandler(handler)
    level = logger.level
    init_weights_quietly(Tiny())
    assert logged == [] and logger.level == level  # and the level is put back
    Tiny().init_weights()
    assert any("init_weights" in m for m in logged)  # what it keeps quiet


def test_unknown_subcommands_and_benchmarks_are_named(capsys):
    assert main(["trian"]) == 2
    assert "unknown subcommand 'trian'; did you mean 'train'?" in capsys.readouterr().err
    assert main(["bench"]) == 2
    assert "bev_pool" in capsys.readouterr().out
    assert main(["bench", "nothing"]) == 2
    assert "no benchmark 'nothing'" in capsys.readouterr().err
    assert main([]) == 2 and "doctor" in capsys.readouterr().out


def test_a_tool_error_through_the_cli_is_one_line_and_exit_status_1():
    code, out = _pc_kd("train", "configs/nothing.py")
    assert code == 1 and "error: config not found: configs/nothing.py" in out and "Traceback" not in out


def test_doctor_reports_what_torch_and_the_sparse_backend_say():
    sections = dict(report(render=False))
    packages = dict(sections["packages"])
    assert packages["torch"] == metadata.version("torch") and packages["mmengine"] == "0.10.7"
    compute = dict(sections["compute"])
    assert compute["torch build"].startswith(torch.__version__)
    assert compute["sparse conv"].startswith("spconv")
    expected_gpu = "GPU 0" if torch.cuda.is_available() else "GPU"
    assert expected_gpu in compute
    data = dict(next(rows for title, rows in sections.items() if title.startswith("data")))
    assert set(data) >= {"ScanNet", "S3DIS", "nuScenes", "PC_KD_REAL_DATA"}


def test_doctor_from_the_command_line_tries_a_headless_render():
    code, out = _pc_kd("doctor")
    assert code == 0
    for title in ("packages:", "compute:", "pictures:", "weights:"):
        assert title in out
    assert "headless render  works" in out, out  # the [vis] extra is installed by make install
