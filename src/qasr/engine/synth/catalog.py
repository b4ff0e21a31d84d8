"""Which registry names can be synthesized, as which architecture and quantization, and where to."""

from __future__ import annotations

from pathlib import Path

from qasr.engine import registry
from qasr.engine.modelfile import SYNTHETIC_SUFFIX
from qasr.engine.synth.shapes import BY_SIZE, QUANT_TYPES, Architecture
from qasr.errors import UsageError


def names() -> list[str]:
    """Registry names with a published shape and a quantization the writer produces."""
    return [m.name for m in registry.MODELS if m.quantization in QUANT_TYPES and (m.kind, m.parameters) in BY_SIZE]


def resolve(name: str) -> tuple[registry.RegistryModel, Architecture, str]:
    """(registry entry, architecture, quantization) for ``name``; a usage error naming the choices."""
    model = registry.get(name)
    arch = BY_SIZE.get((model.kind, model.parameters))
    if arch is None or model.quantization not in QUANT_TYPES:
        raise UsageError(f"cannot synthesize {model.name} ({model.quantization}); choose one of: {', '.join(names())}")
    return model, arch, model.quantization


def default_path(model: registry.RegistryModel, directory: Path | None = None) -> Path:
    """``<models dir>/<name>.synthetic.bin``: never the published file's name."""
    return (directory or registry.models_dir()) / f"{model.name}{SYNTHETIC_SUFFIX}"
