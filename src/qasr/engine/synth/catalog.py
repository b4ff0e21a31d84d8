"""Which registry names can be synthesized, as which architecture and quantization, and where to."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from qasr.engine import registry
from qasr.engine.modelfile import SYNTHETIC_SUFFIX
from qasr.engine.synth.shapes import BY_SIZE, QUANT_TYPES, Architecture
from qasr.errors import UsageError
from qasr.progress import Progress

if TYPE_CHECKING:
    from qasr.engine.synth.writer import SynthResult


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


def write(name: str, path: Path, *, seed: int = 0, progress: Progress | None = None) -> SynthResult:
    """Write the synthetic stand-in of registry ``name`` to ``path`` (its folder made if missing):
    what `qasr models synth` and `stand_in` both do."""
    from qasr.engine.synth.writer import write_model

    model, arch, dtype = resolve(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {path.parent}: {exc.strerror}") from None
    return write_model(arch, path, dtype=dtype, seed=seed, progress=progress, label=f"synth {model.name}")


def stand_in(value: str, directory: Path | None = None, *, progress: Progress | None = None) -> Path:
    """The synthetic stand-in for ``value``, so a config written for real weights runs without them.

    A registry name becomes ``<models dir>/<name>.synthetic.bin``, written (seed 0) when it is not
    there (an existing one is used as it is); a path must already be a synthetic file, never a real
    model passed off as one.
    """
    from qasr.engine.modelfile import inspect_model_file

    if value not in registry.names():
        info = inspect_model_file(value)  # a clear ModelFileError for a missing or corrupt file
        if not info.synthetic:
            raise UsageError(f"{value} is a real model; with synthetic models give a registry name "
                             f"({', '.join(names())}) or a file written by qasr models synth")
        return info.path
    model, _, _ = resolve(value)  # a usage error for a name the writer cannot make
    path = default_path(model, directory)
    if path.exists():
        inspect_model_file(path)  # a clear ModelFileError for a corrupt one (qasr models synth --force rewrites it)
    else:
        write(value, path, progress=progress)
    return path


def default_path(model: registry.RegistryModel, directory: Path | None = None) -> Path:
    """``<models dir>/<name>.synthetic.bin``: never the published file's name."""
    return (directory or registry.models_dir()) / f"{model.name}{SYNTHETIC_SUFFIX}"
