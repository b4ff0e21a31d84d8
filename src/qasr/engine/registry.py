"""The published Qwen3-ASR / ForcedAligner files (chatllm.cpp's and CrispASR's GGUF), where they live locally, and their state.

Users should not have to know that chatllm.cpp's store spells the aligner ``qwen3-focedaligner`` (sic),
that its q8_0 files carry no quantization suffix, or that the q4_0 conversions live on Hugging Face:
each published file gets a short registry name (``qwen3-asr-0.6b-q4_0``) and is saved under the
store's own file name in the models directory (``./models``, or ``QASR_MODELS_DIR``).

CrispASR's GGUF files (``crispasr-...`` names, ``--provider crispasr``) are the ones its own registry
(``crispasr.registry_lookup``) and model cards list on Hugging Face (``cstr/qwen3-asr-0.6b-GGUF``...);
their cards give sizes to a few MB only, so they are recorded on first download like the q4_0 files.

Sizes come from chatllm.cpp's ``scripts/models.json`` where it lists them. For the q4_0 files only
an approximate size is known, so the first successful download (checked by header) records the exact
size in ``<models dir>/.qasr-models.json``; later checks and resumes hold the file to it.

Data and lookups only: downloading is `qasr.engine.download`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qasr.engine.modelfile import SYNTHETIC_SUFFIX, ModelFileInfo, ModelKind, inspect_model_file, require_kind
from qasr.errors import ModelFileError, UsageError

if TYPE_CHECKING:  # qasr.engine.gguf loads where a GGUF is read: every transcribe resolves its model here
    from qasr.engine.gguf import GgufInfo

ENV_MODELS_DIR = "QASR_MODELS_DIR"
ENV_MIRROR = "QASR_MODELS_MIRROR"
DEFAULT_DIR = "models"
RECORD_FILE = ".qasr-models.json"
PART_SUFFIX = ".part"

# chatllm.cpp's store (scripts/model_downloader.py: get_model_url_on_modelscope).
_MODELSCOPE = "https://modelscope.cn/api/v1/models/judd2024/chatllm_quantized_qwen3/repo?Revision=master&FilePath={file}"
# The study's q4_0 conversions (GUIDE.md §7).
_HUGGINGFACE = "https://huggingface.co/Luigi/Qwen3-ASR-0.6B-chatllm-quantized/resolve/main/{file}"
_STORE = "chatllm.cpp store (ModelScope judd2024/chatllm_quantized_qwen3)"
_STUDY = "Hugging Face Luigi/Qwen3-ASR-0.6B-chatllm-quantized"
# CrispASR's GGUF conversions (its registry: crispasr.registry_lookup("qwen3"), "qwen3-1.7b", "qwen3-forced-aligner").
_CRISP = "https://huggingface.co/cstr/{repo}-GGUF/resolve/main/{file}"
_CRISP_SOURCE = "Hugging Face cstr/*-GGUF (CrispASR)"


@dataclass(frozen=True)
class RegistryModel:
    """One published model file."""

    name: str
    kind: ModelKind
    filename: str
    urls: tuple[str, ...]
    size: int | None  # exact bytes when published; None: recorded on first download
    quantization: str
    parameters: str
    source: str
    approx_size: int | None = None  # for display only, when ``size`` is unknown
    note: str = ""
    file_format: str = "ggmm"  # ggmm (chatllm.cpp, --provider qwen3-chatllm) or gguf (CrispASR, --provider crispasr)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "filename": self.filename,
            "urls": list(self.urls),
            "size": self.size,
            "approx_size": self.approx_size,
            "quantization": self.quantization,
            "parameters": self.parameters,
            "source": self.source,
            "note": self.note,
            "format": self.file_format,
        }


def _entry(name: str, kind: ModelKind, filename: str, url: str, size: int | None, quant: str, params: str,
           source: str, approx: int | None = None, note: str = "") -> RegistryModel:
    return RegistryModel(name, kind, filename, (url.format(file=filename),), size, quant, params, source, approx, note)


ASR, ALIGNER = ModelKind.ASR, ModelKind.ALIGNER
MODELS: tuple[RegistryModel, ...] = (
    _entry("qwen3-asr-0.6b-q4_0", ASR, "qwen3-asr-0.6b-q4_0.bin", _HUGGINGFACE, None, "q4_0", "0.6B", _STUDY, 514_000_000),
    _entry("qwen3-asr-0.6b-q8_0", ASR, "qwen3-asr-0.6b.bin", _MODELSCOPE, 1_005_656_864, "q8_0", "0.6B", _STORE),
    _entry("qwen3-asr-1.7b-q4_0", ASR, "qwen3-asr-1.7b-q4_0.bin", _HUGGINGFACE, None, "q4_0", "1.7B", _STUDY, 1_270_000_000,
           note="listed in the study's README; that it is hosted in this repository is unverified"),
    _entry("qwen3-asr-1.7b-q8_0", ASR, "qwen3-asr-1.7b.bin", _MODELSCOPE, 2_505_570_400, "q8_0", "1.7B", _STORE),
    _entry("qwen3-aligner-0.6b-q4_0", ALIGNER, "qwen3-forced-aligner-0.6b-q4_0.bin", _HUGGINGFACE, None, "q4_0", "0.6B",
           _STUDY, 503_000_000),
    _entry("qwen3-aligner-0.6b-q8_0", ALIGNER, "qwen3-focedaligner-0.6b.bin", _MODELSCOPE, 984_439_424, "q8_0", "0.6B",
           _STORE, note="upstream spells the file 'focedaligner' (sic)"),
    _entry("qwen3-aligner-0.6b-f16", ALIGNER, "qwen3-focedaligner-0.6b-f16.bin", _MODELSCOPE, 1_840_552_064, "f16", "0.6B",
           _STORE, note="upstream spells the file 'focedaligner' (sic)"),
)


def _crisp(name: str, kind: ModelKind, repo: str, filename: str, quant: str, params: str, approx: int, note: str = "") -> RegistryModel:
    url = _CRISP.format(repo=repo, file=filename)
    return RegistryModel(name, kind, filename, (url,), None, quant, params, _CRISP_SOURCE, approx, note, "gguf")


_REBAKE = "2026-07 rebake: audio tower kept at q8_0 (card: 631 MB; CrispASR's registry still says ~500 MB)"
MODELS += (
    _crisp("crispasr-qwen3-asr-0.6b-q4_k", ASR, "qwen3-asr-0.6b", "qwen3-asr-0.6b-q4_k.gguf", "q4_k", "0.6B", 631_000_000, _REBAKE),
    _crisp("crispasr-qwen3-asr-0.6b-q8_0", ASR, "qwen3-asr-0.6b", "qwen3-asr-0.6b-q8_0.gguf", "q8_0", "0.6B", 961_000_000),
    _crisp("crispasr-qwen3-asr-0.6b-f16", ASR, "qwen3-asr-0.6b", "qwen3-asr-0.6b.gguf", "f16", "0.6B", 1_880_000_000),
    _crisp("crispasr-qwen3-asr-1.7b-q4_k", ASR, "qwen3-asr-1.7b", "qwen3-asr-1.7b-q4_k.gguf", "q4_k", "1.7B", 1_300_000_000),
    _crisp("crispasr-qwen3-aligner-0.6b-q4_k", ALIGNER, "qwen3-forced-aligner-0.6b", "qwen3-forced-aligner-0.6b-q4_k.gguf",
           "q4_k", "0.6B", 500_000_000),
)
DEFAULTS: dict[ModelKind, str] = {ASR: "qwen3-asr-0.6b-q4_0", ALIGNER: "qwen3-aligner-0.6b-q4_0"}


def names() -> list[str]:
    return [m.name for m in MODELS]


def find(name: str) -> RegistryModel | None:
    """The entry called ``name`` (or whose store file name is ``name``), else None."""
    key = name.strip().lower()
    for m in MODELS:
        if key in (m.name, m.filename.lower()):
            return m
    return None


def get(name: str) -> RegistryModel:
    """The entry called ``name``; a usage error listing every name otherwise."""
    model = find(name)
    if model is None:
        raise UsageError(f"unknown model {name!r}; known: {', '.join(names())} (see: qasr models list)")
    return model


def models_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where models go: ``explicit``, else ``QASR_MODELS_DIR``, else ``./models`` (absolute)."""
    chosen = explicit or os.environ.get(ENV_MODELS_DIR) or DEFAULT_DIR
    return Path(os.path.abspath(Path(chosen).expanduser()))


def local_path(model: RegistryModel, directory: Path | None = None) -> Path:
    return (directory or models_dir()) / model.filename


def partial_path(path: Path) -> Path:
    """Where an unfinished download of ``path`` accumulates (resumed with an HTTP Range request)."""
    return path.with_name(path.name + PART_SUFFIX)


def source_urls(model: RegistryModel, mirror: str | None = None) -> tuple[str, ...]:
    """The URLs to try, in order. A mirror (argument or ``QASR_MODELS_MIRROR``) replaces them all:
    ``{file}`` in it is replaced by the file name, otherwise the file name is appended."""
    base = mirror if mirror is not None else os.environ.get(ENV_MIRROR, "")
    base = base.strip()
    if not base:
        return model.urls
    if "{file}" in base:
        return (base.replace("{file}", model.filename),)
    return (f"{base.rstrip('/')}/{model.filename}",)


# --- sizes recorded on first download ---------------------------------------------------------

def read_records(directory: Path) -> dict[str, dict[str, object]]:
    """What earlier downloads recorded (an unreadable record file counts as empty: it is a cache)."""
    try:
        data = json.loads((directory / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def record_download(directory: Path, model: RegistryModel, size: int, url: str) -> None:
    """Remember the exact size of a file whose size the registry does not know (atomic write)."""
    records = read_records(directory)
    records[model.name] = {"filename": model.filename, "bytes": size, "url": url,
                           "downloaded": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    from qasr.fileio import write_atomic

    write_atomic(directory / RECORD_FILE, json.dumps(records, indent=2, sort_keys=True) + "\n")


def expected_size(model: RegistryModel, directory: Path | None = None) -> int | None:
    """The registry's size, else the one recorded on first download, else None."""
    if model.size is not None:
        return model.size
    rec = read_records(directory or models_dir()).get(model.name, {})
    size = rec.get("bytes")
    return size if isinstance(size, int) and rec.get("filename") == model.filename else None


# --- local state ------------------------------------------------------------------------------

@dataclass(frozen=True)
class LocalState:
    """Whether a registry file is on disk and fit to load."""

    model: RegistryModel
    path: Path
    present: bool
    valid: bool
    problem: str | None
    size: int | None
    partial_bytes: int | None

    @property
    def status(self) -> str:
        if self.valid:
            return "ok"
        if self.present:
            return "invalid"
        return "partial" if self.partial_bytes else "missing"

    def to_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "present": self.present, "valid": self.valid, "status": self.status,
                "problem": self.problem, "size": self.size, "partial_bytes": self.partial_bytes}


def check_file(path: Path, model: RegistryModel, size: int | None) -> None:
    """Raise `ModelFileError` unless ``path`` has a sound header, the right kind and the expected size
    (in that order: "this is a GGUF file" helps more than "wrong size")."""
    info: ModelFileInfo | GgufInfo
    if model.file_format == "gguf":
        from qasr.engine.gguf import inspect_gguf, require_qwen3

        info = require_qwen3(inspect_gguf(path), model.kind)
    else:
        info = require_kind(inspect_model_file(path), model.kind)
    if info.synthetic:
        raise ModelFileError(f"{path} is a SYNTHETIC model (random weights, qasr models synth), not the published {model.name}")
    if size is not None and info.file_bytes != size:
        raise ModelFileError(f"{path} has {info.file_bytes:,} bytes, {model.name} has {size:,}")


def local_state(model: RegistryModel, directory: Path | None = None) -> LocalState:
    """Check the local copy by size and header (reads headers only, never the weights)."""
    directory = directory or models_dir()
    path = local_path(model, directory)
    part = partial_path(path)
    partial = part.stat().st_size if part.is_file() else None
    if not path.exists():
        return LocalState(model, path, False, False, None, None, partial)
    if not path.is_file():
        return LocalState(model, path, True, False, f"{path} is not a regular file", None, partial)
    size = None
    try:
        size = path.stat().st_size
        check_file(path, model, expected_size(model, directory))
    except ModelFileError as exc:
        return LocalState(model, path, True, False, str(exc), size, partial)
    except OSError as exc:
        return LocalState(model, path, True, False, f"cannot read {path}: {exc.strerror}", None, partial)
    return LocalState(model, path, True, True, None, size, partial)


@dataclass(frozen=True)
class SyntheticFile:
    """A ``*.synthetic.bin`` file in the models directory (written by ``qasr models synth``)."""

    path: Path
    info: ModelFileInfo | GgufInfo | None
    problem: str | None

    def to_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "synthetic": True, "valid": self.info is not None, "problem": self.problem,
                "info": self.info.to_dict() if self.info else None}


def synthetic_files(directory: Path | None = None) -> list[SyntheticFile]:
    """Every synthetic model file (chatllm.cpp's or GGUF) in the models directory, checked by header (never the weights)."""
    directory = directory or models_dir()
    found = []
    from qasr.engine.gguf import SYNTHETIC_SUFFIX as GGUF_SYNTHETIC_SUFFIX
    from qasr.engine.gguf import inspect_gguf

    paths = sorted([*directory.glob(f"*{SYNTHETIC_SUFFIX}"), *directory.glob(f"*{GGUF_SYNTHETIC_SUFFIX}")]) if directory.is_dir() else []
    for path in paths:
        try:
            found.append(SyntheticFile(path, inspect_gguf(path) if path.name.endswith(GGUF_SYNTHETIC_SUFFIX) else inspect_model_file(path), None))
        except ModelFileError as exc:
            found.append(SyntheticFile(path, None, str(exc)))
    return found


def resolve_model(name_or_path: str | os.PathLike[str], directory: Path | None = None) -> Path:
    """A model argument as a path: an existing path wins; else a registry name in the models dir.

    Raises `ModelFileError` when it is neither, naming the known models and how to download one.
    """
    text = os.fspath(name_or_path)
    given = Path(text).expanduser()
    if given.exists():
        return given
    model = find(text)
    if model is None and (os.sep in text or given.suffix):
        raise ModelFileError(f"model file not found: {given} (or give a registry name: qasr models list)")
    if model is None:
        raise ModelFileError(
            f"{text!r} is neither a model file nor a known model name (known: {', '.join(names())}); "
            "download one with: qasr models pull NAME"
        )
    path = local_path(model, directory)
    if path.exists():
        return path
    partial = partial_path(path)
    how = "resume its download" if partial.is_file() else "download it"
    raise ModelFileError(f"model {model.name} is not downloaded (expected {path}); {how} with: qasr models pull {model.name}")


def model_file(name_or_path: str | os.PathLike[str], kind: ModelKind) -> ModelFileInfo:
    """A model argument checked for use: resolved (`resolve_model`), its header read and its kind
    required (`qasr.engine.modelfile`), before any native code sees it. The one place commands,
    providers, servers and workers turn ``--model``/``--aligner`` into a file they may load."""
    return require_kind(inspect_model_file(resolve_model(name_or_path)), kind)
