"""OmegaConf resolvers used by the Hydra configs (registered before composing)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from src.model import packaged_model_path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def register_resolvers() -> None:
    """``${packaged_model:PKG}``: a model folder shipped in a Python package; ``${project_root:}``: the repository."""
    if not OmegaConf.has_resolver("packaged_model"):
        OmegaConf.register_new_resolver("packaged_model", packaged_model_path)
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
