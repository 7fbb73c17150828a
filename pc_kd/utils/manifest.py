"""A manifest of per-scene output files, for preprocessing that is sharded over processes or machines and resumed.

Every process appends to its own ``<out>/manifest/shard-<i>-of-<n>.jsonl`` one line per finished scene, after the
scene's file was renamed into place::

    {"scene": "scene0000_00", "file": "scene0000_00.npz", "size": 123456, "sha256": "...", "fingerprint": "...",
     "written_at": 1796083200.5}

``fingerprint`` identifies what made the file (the teacher and the fusion options, the super-point source and
its parameters). A scene is done when its newest entry has the run's fingerprint and its file has the recorded
size; :func:`verify_scenes` also compares the checksum. A line cut short by a kill is ignored, as is a file whose
entry never got written, so a killed run redoes exactly the scenes it had not recorded.
"""
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

MANIFEST_DIR = "manifest"


def fingerprint(what: Mapping) -> str:
    """A short hash of a JSON-able description of how the files are made (``str`` for anything else)."""
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_sha256(path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_shard(text: Optional[str] = None, environ: Mapping[str, str] = os.environ) -> Tuple[int, int]:
    """``"i/n"`` -> ``(i, n)``; without text the launcher's ``RANK`` / ``WORLD_SIZE`` (torchrun), else slurm's
    ``SLURM_PROCID`` / ``SLURM_NTASKS``, else ``(0, 1)``."""
    if text:
        try:
            i, n = (int(v) for v in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard must be i/n (e.g. 0/4), got {text!r}") from None
    elif "RANK" in environ:
        i, n = int(environ["RANK"]), int(environ.get("WORLD_SIZE", 1))
    else:
        i, n = int(environ.get("SLURM_PROCID", 0)), int(environ.get("SLURM_NTASKS", 1))
    if not 0 <= i < n:
        raise ValueError(f"--shard must be i/n with 0 <= i < n, got {i}/{n}")
    return i, n


def read_manifest(out_dir) -> Dict[str, dict]:
    """The newest entry (``written_at``; a later line on a tie) of every scene over all shards' manifest files of
    ``out_dir``; cut-short lines are ignored."""
    entries: Dict[str, dict] = {}
    for path in sorted((Path(out_dir) / MANIFEST_DIR).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not (isinstance(entry, dict) and {"scene", "file", "size", "sha256", "fingerprint"} <= set(entry)):
                continue
            old = entries.get(entry["scene"])
            if old is None or entry.get("written_at", 0.0) >= old.get("written_at", 0.0):
                entries[entry["scene"]] = entry
    return entries


class SceneManifest:
    """The manifest of one process writing scenes into ``out_dir`` with ``fingerprint``, as shard ``i`` of ``n``.

    Example::

        manifest = SceneManifest(out, fingerprint(dict(teacher=..., **options)), shard=(0, 2))
        for scene in scenes:
            if manifest.is_done(scene, f"{scene}.npz"):
                continue
            ...  # write out / f"{scene}.npz" atomically
            manifest.record(scene, f"{scene}.npz")
    """

    def __init__(self, out_dir, fingerprint: str, shard: Tuple[int, int] = (0, 1)):
        self.out_dir, self.fingerprint = Path(out_dir), fingerprint
        self.path = self.out_dir / MANIFEST_DIR / f"shard-{shard[0]}-of-{shard[1]}.jsonl"
        self.entries = read_manifest(self.out_dir)

    def is_done(self, scene: str, file: str) -> bool:
        """Recorded with this fingerprint, and the file is there with the recorded size."""
        entry = self.entries.get(scene)
        path = self.out_dir / file
        return (entry is not None and entry["fingerprint"] == self.fingerprint and entry["file"] == file
                and path.is_file() and path.stat().st_size == entry["size"])

    def record(self, scene: str, file: str) -> dict:
        """Append the entry of ``out_dir / file`` (just written) to this process's manifest file, flushed to disk."""
        path = self.out_dir / file
        entry = dict(scene=scene, file=file, size=path.stat().st_size, sha256=file_sha256(path),
                     fingerprint=self.fingerprint, written_at=time.time())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.entries[scene] = entry
        return entry


def verify_scenes(out_dir, scenes: Iterable[str], suffix: str, fingerprint: str) -> Dict[str, List[str]]:
    """Check the output of every scene in ``scenes`` (file ``<scene><suffix>``) against the manifest:
    ``missing`` (no file, or no entry: never finished), ``corrupt`` (size or checksum differs from the entry, e.g.
    a truncated file), ``stale`` (made with another fingerprint: another teacher or config) and ``ok``."""
    entries = read_manifest(out_dir)
    report: Dict[str, List[str]] = dict(missing=[], corrupt=[], stale=[], ok=[])
    for scene in scenes:
        entry, path = entries.get(scene), Path(out_dir) / f"{scene}{suffix}"
        if entry is None or not path.is_file():
            report["missing"].append(scene)
        elif path.stat().st_size != entry["size"] or file_sha256(path) != entry["sha256"]:
            report["corrupt"].append(scene)
        elif entry["fingerprint"] != fingerprint:
            report["stale"].append(scene)
        else:
            report["ok"].append(scene)
    return report


def verify_summary(report: Mapping[str, List[str]], out_dir, limit: int = 20) -> str:
    """One line per problem kind, naming up to ``limit`` scenes, and what to run."""
    total = sum(len(v) for v in report.values())
    lines = [f"{out_dir}: {len(report['ok'])} of {total} scenes verified"]
    why = dict(missing="missing (no file or never recorded as finished)",
               corrupt="corrupt (size or checksum differs from the manifest)",
               stale="stale (made with another teacher / config)")
    for kind, text in why.items():
        if report[kind]:
            names = ", ".join(report[kind][:limit]) + (" ..." if len(report[kind]) > limit else "")
            lines.append(f"  {len(report[kind])} {text}: {names}")
    if len(report["ok"]) < total:
        lines.append("  rerun the same command without --verify to redo them")
    return "\n".join(lines)


def add_shard_options(parser) -> None:
    """``--shard i/n`` and ``--verify`` of the preprocessing tools."""
    parser.add_argument("--shard", help="i/n: process every n-th scene starting at i (default: RANK / WORLD_SIZE "
                                        "under torchrun, SLURM_PROCID / SLURM_NTASKS under srun, else all)")
    parser.add_argument("--verify", action="store_true",
                        help="check every scene of the split against the manifest (nothing computed); exit 1 on "
                             "problems")


def shard_from_args(parser, args) -> Tuple[int, int]:
    """The process's ``(i, n)``; a malformed ``--shard`` ends the tool with the parser's usage error."""
    try:
        return parse_shard(args.shard)
    except ValueError as err:
        parser.error(str(err))


def report_verification(out_dir, scenes: List[str], suffix: str, fingerprint: str) -> int:
    """Print :func:`verify_summary` of ``scenes`` and return the exit status: 0 when every scene is verified."""
    report = verify_scenes(out_dir, scenes, suffix, fingerprint)
    print(verify_summary(report, out_dir))
    return 0 if len(report["ok"]) == len(scenes) else 1
