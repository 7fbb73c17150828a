"""``python -m pc_kd SUBCOMMAND ...``: the ``pc-kd`` command (see pc_kd.cli)."""
import sys

from pc_kd.cli import main

sys.exit(main())
