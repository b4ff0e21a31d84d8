"""Which names can be synthesized, in which file format, as which architecture and type, and where to.

Three formats, chosen by the name: a chatllm.cpp registry name (``qwen3-asr-0.6b-q4_0``) writes our
``ggmm`` file (`qasr.engine.synth.writer`), a CrispASR registry name (``crispasr-qwen3-asr-0.6b-q4_k``)
a GGUF file (`qasr.engine.synth.gguf`), and a checkpoint name (``qwen3-asr-0.6b-hf``) the official
BF16 safetensors directory (`qasr.engine.synth.safetensors`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

from qasr.engine import registry
from qasr.engine.gguf import SYNTHETIC_SUFFIX as GGUF_SUFFIX
from qasr.engine.modelfile import SYNTHETIC_SUFFIX
from qasr.engine.synth.shapes import BY_SIZE, QUANT_TYPES, Architecture
from qasr.errors import UsageError
from qasr.progress import Progress

if TYPE_CHECKING:
    from qasr.engine.synth.writer import SynthResult

SUFFIXES = {"ggmm": SYNTHETIC_SUFFIX, "gguf": GGUF_SUFFIX, "safetensors": ".synthetic"}


@dataclass(frozen=True)
class Checkpoint:
    """A Hugging Face checkpoint layout we can synthesize (not a downloadable registry entry)."""

    name: str
    file_format: str = "safetensors"


Target = Union[registry.RegistryModel, Checkpoint]


def _types(file_format: str) -> tuple[str, ...]:
    from qasr.engine.synth.gguf import GGUF_TYPES

    return tuple(GGUF_TYPES) if file_format == "gguf" else tuple(QUANT_TYPES)


def names() -> list[str]:
    """Registry names with a published shape and a type the writers produce, then the checkpoint names."""
    from qasr.engine.synth.safetensors import CHECKPOINTS

    found = [m.name for m in registry.MODELS if m.quantization in _types(m.file_format) and (m.kind, m.parameters) in BY_SIZE]
    return found + list(CHECKPOINTS)


def resolve(name: str) -> tuple[Target, Architecture, str]:
    """(registry entry or checkpoint, architecture, type) for ``name``; a usage error naming the choices."""
    from qasr.engine.synth.safetensors import CHECKPOINTS

    if name.strip().lower() in CHECKPOINTS:
        key = name.strip().lower()
        return Checkpoint(key), CHECKPOINTS[key], "bf16"
    if registry.find(name) is None:
        raise UsageError(f"unknown model {name!r}; synthesizable: {', '.join(names())}")
    model = registry.get(name)
    arch = BY_SIZE.get((model.kind, model.parameters))
    if arch is None or model.quantization not in _types(model.file_format):
        raise UsageError(f"cannot synthesize {model.name} ({model.quantization}); choose one of: {', '.join(names())}")
    return model, arch, model.quantization


def write(name: str, path: Path, *, seed: int = 0, progress: Progress | None = None) -> SynthResult:
    """Write the synthetic stand-in of ``name`` to ``path`` (its folder made if missing), in the
    name's format: what `qasr models synth` and `stand_in` both do."""
    target, arch, dtype = resolve(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {path.parent}: {exc.strerror}") from None
    label = f"synth {target.name}"
    if target.file_format == "gguf":
        from qasr.engine.synth.gguf import write_gguf

        return write_gguf(arch, path, dtype=dtype, seed=seed, progress=progress, label=label)
    if target.file_format == "safetensors":
        from qasr.engine.synth.safetensors import write_checkpoint

        return write_checkpoint(arch, path, seed=seed, progress=progress, label=label)
    from qasr.engine.synth.writer import write_model

    return write_model(arch, path, dtype=dtype, seed=seed, progress=progress, label=label)


def inspect(path: Path, target: Target) -> dict[str, object]:
    """What every later command will see of a written file: its header, read back and checked."""
    if target.file_format == "gguf":
        from qasr.engine.gguf import inspect_gguf

        return inspect_gguf(path).to_dict()
    if target.file_format == "safetensors":
        from qasr.engine.synth.safetensors import inspect_checkpoint

        return inspect_checkpoint(path)
    from qasr.engine.modelfile import inspect_model_file

    return inspect_model_file(path).to_dict()


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
    if model.file_format != "ggmm":
        raise UsageError(f"{value} is not a chatllm.cpp model; synthetic stand-ins are chatllm.cpp files")
    path = default_path(model, directory)
    if path.exists():
        inspect_model_file(path)  # a clear ModelFileError for a corrupt one (qasr models synth --force rewrites it)
    else:
        write(value, path, progress=progress)
    return path


def default_path(model: Target, directory: Path | None = None) -> Path:
    """``<models dir>/<name>.synthetic.bin`` (``.synthetic.gguf``; ``.synthetic/`` for a checkpoint):
    never the published file's name."""
    return (directory or registry.models_dir()) / f"{model.name}{SUFFIXES[model.file_format]}"
