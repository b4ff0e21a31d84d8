"""``qasr models list|pull|path|synth``: the published model files, downloaded and located by name,
and synthetic (random-weight) stand-ins with the published shapes for measurements."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Published Qwen3-ASR / ForcedAligner files: list, download, locate, synthesize.", no_args_is_help=True,
                  rich_markup_mode=None)

_DIR_HELP = "Models directory (default: $QASR_MODELS_DIR, then ./models)."


def _size(model, state) -> str:  # type: ignore[no-untyped-def]
    from qasr.lab.units import format_bytes

    if state.size is not None and state.valid:
        return format_bytes(state.size, precision=2, binary=False)
    if model.size is not None:
        return format_bytes(model.size, precision=2, binary=False)
    return "~" + format_bytes(model.approx_size, precision=2, binary=False) if model.approx_size else "?"


def _local(state) -> str:  # type: ignore[no-untyped-def]
    if state.status == "partial":
        return f"partial ({state.partial_bytes:,} B; pull resumes)"
    return state.status


@app.command("list")
def list_models(
    as_json: bool = typer.Option(False, "--json", help="One JSON document: every entry and its local state."),
    models_dir: Optional[Path] = typer.Option(None, "--models-dir", help=_DIR_HELP),
) -> None:
    """List the registry: name, kind, quantization, size, and whether a valid copy is here."""
    from qasr.engine import registry

    directory = registry.models_dir(models_dir)
    states = [registry.local_state(m, directory) for m in registry.MODELS]
    synthetic = registry.synthetic_files(directory)
    defaults = set(registry.DEFAULTS.values())
    if as_json:
        rows = [{**s.model.to_dict(), "default": s.model.name in defaults, "local": s.to_dict()} for s in states]
        print(json.dumps({"models_dir": str(directory), "models": rows, "synthetic": [f.to_dict() for f in synthetic]},
                         indent=2))
        return
    table = [("NAME", "KIND", "QUANT", "PARAMS", "SIZE", "LOCAL")]
    for s in states:
        m = s.model
        table.append((m.name + (" *" if m.name in defaults else ""), m.kind.value, m.quantization, m.parameters,
                      _size(m, s), _local(s)))
    table.extend(_synthetic_row(f) for f in synthetic)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    print(f"\nmodels dir: {directory}   (* default; download with: qasr models pull NAME)")
    if synthetic:
        print("SYNTHETIC: random weights with the published shapes, for speed and memory measurements only")
    for s in states:
        if s.problem:
            print(f"{s.model.name}: {s.problem}", file=sys.stderr)
    for f in synthetic:
        if f.problem:
            print(f"{f.path.name}: {f.problem}", file=sys.stderr)


def _synthetic_row(f) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    from qasr.lab.units import format_bytes

    if f.info is None:
        return (f.path.name, "?", "?", "?", "?", "SYNTHETIC, invalid")
    i = f.info
    params = f"{i.num_layers}L x {i.hidden_size}"  # decoder layers x width
    return (f.path.name, i.kind.value, i.dtype, params, format_bytes(i.file_bytes, precision=2, binary=False),
            "SYNTHETIC (random weights)")


@app.command("path")
def path(
    name: str = typer.Argument(..., help="A registry name (see: qasr models list).", show_default=False),
    models_dir: Optional[Path] = typer.Option(None, "--models-dir", help=_DIR_HELP),
) -> None:
    """Print the local path of a downloaded model (exit 2 if it is missing or invalid)."""
    from qasr.engine import registry
    from qasr.errors import ModelFileError

    state = registry.local_state(registry.get(name), registry.models_dir(models_dir))
    if not state.present:
        raise ModelFileError(f"{name} is not downloaded (expected {state.path}); run: qasr models pull {name}")
    if not state.valid:
        raise ModelFileError(f"{state.problem}; download it again with: qasr models pull {name} --force")
    print(state.path)


@app.command("pull")
def pull(
    name: str = typer.Argument(..., help="A registry name (see: qasr models list).", show_default=False),
    force: bool = typer.Option(False, "--force", help="Download again from zero, even if a valid copy (or a partial download) is present."),
    url: Optional[str] = typer.Option(None, "--url", help="Download from this URL instead of the registry's."),
    mirror: Optional[str] = typer.Option(None, "--mirror", envvar="QASR_MODELS_MIRROR",
                                         help="Base URL serving the same file names ({file} is replaced, else appended)."),
    models_dir: Optional[Path] = typer.Option(None, "--models-dir", help=_DIR_HELP),
    timeout: float = typer.Option(30.0, "--timeout", min=1.0, help="Seconds to wait for the server before retrying."),
) -> None:
    """Download a model (resuming a partial download), check its size and header, and print its path.

    Exit codes: 0 ok, 1 download failed, 2 unknown name or bad arguments.
    """
    from qasr.engine import download, registry
    from qasr.lab.units import format_bytes

    model = registry.get(name)
    directory = registry.models_dir(models_dir)
    state = registry.local_state(model, directory)
    if force or not state.valid:
        why = f" ({state.problem})" if state.problem else ""
        print(f"downloading {model.name} from {url or registry.source_urls(model, mirror)[0]}{why}", file=sys.stderr)
    result = download.pull(model, directory, url=url, mirror=mirror, force=force, timeout=timeout)
    got = result.download
    if got is None:
        print(f"{model.name} is already here and valid (use --force to download again)", file=sys.stderr)
    else:
        how = f", resumed from {got.resumed_from:,} bytes" if got.resumed_from else ""
        how += ", the server ignored the resume request so it started over" if got.restarted else ""
        print(f"{model.name}: {format_bytes(got.size, binary=False)} in {got.seconds:.1f} s{how}; "
              "size and header checked", file=sys.stderr)
    print(result.path)


@app.command("synth")
def synth(
    name: str = typer.Argument(..., help="What to write: a chatllm.cpp registry name (qwen3-asr-0.6b-q4_0), a CrispASR "
                               "one for a GGUF (crispasr-qwen3-asr-0.6b-q4_k), or a BF16 safetensors checkpoint "
                               "(qwen3-asr-0.6b-hf, qwen3-asr-1.7b-hf, qwen3-aligner-0.6b-hf).", show_default=False),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Where to write (default: MODELS_DIR/NAME.synthetic.bin, .synthetic.gguf, "
                                               "or the directory NAME.synthetic for a checkpoint)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed writes the same bytes."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
    models_dir: Optional[Path] = typer.Option(None, "--models-dir", help=_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document about the file instead of its path."),
) -> None:
    """Write a SYNTHETIC model: random weights with the published shapes, for speed and memory figures.

    Its transcripts are meaningless and it never stops decoding by itself (cap it with max tokens).
    The file is marked synthetic in its metadata and name; models list and doctor label it.
    The format follows the name: chatllm.cpp's, GGUF (CrispASR), or the official BF16 safetensors.
    Exit codes: 0 ok, 2 unknown name, unsupported quantization, or an existing file without --force.
    """
    from qasr.engine import registry
    from qasr.engine.synth import catalog
    from qasr.errors import UsageError
    from qasr.lab.units import format_bytes
    from qasr.progress import make_progress

    model, arch, dtype = catalog.resolve(name)
    directory = registry.models_dir(models_dir)
    path = output or catalog.default_path(model, directory)
    if path.exists() and not force:
        raise UsageError(f"{path} exists; use --force to replace it")
    result = catalog.write(model.name, path, seed=seed, progress=make_progress(None, "bytes"))
    header = catalog.inspect(result.path, model)  # what every later command will see
    if as_json:
        print(json.dumps({**result.to_dict(), "name": model.name, "format": model.file_format, "header": header}, indent=2))
        return
    print(f"{model.name}: SYNTHETIC {arch.name} {dtype}, {format_bytes(result.file_bytes, binary=False)}, "
          f"{result.parameters:,} parameters, seed {seed}, in {result.seconds:.1f} s", file=sys.stderr)
    print(result.path)
