"""Optional packages: the error a tool prints when one is missing, with the command that installs it without
replacing the installed torch."""
import torch


class MissingDependencyError(ImportError):
    """An optional package that a config or tool needs is not installed; the message says how to install it."""


def torchvision_matching_torch(torch_version: str = torch.__version__) -> str:
    """The torchvision release built against ``torch_version`` (torch 2.x.y pairs with torchvision 0.(x + 15).y)."""
    major, minor, patch = (int(part) for part in (torch_version.split("+")[0].split(".") + ["0"])[:3])
    if major != 2:
        raise ValueError(f"no rule for the torchvision of torch {torch_version}")
    return f"0.{minor + 15}.{patch}"


def timm_missing(what: str) -> MissingDependencyError:
    """The error for ``what`` (e.g. ``TimmTeacher``) when timm is not installed: install timm beside the
    torchvision of this torch, so pip does not replace torch with the build the newest torchvision pins."""
    version = torch.__version__.split("+")[0]
    return MissingDependencyError(
        f"{what} needs timm, which is not installed. Install it with the torchvision of your torch, so pip keeps "
        f"torch {version}: pip install torch=={version} torchvision=={torchvision_matching_torch()} timm "
        f"(or make install TORCH=\"torch=={version} torchvision=={torchvision_matching_torch()}\" "
        f"EXTRAS=spconv,test,vis,teachers; see docs/teachers.md)")
