"""``qasr doctor``: is this machine ready to run qasr, and if not, what exactly to run to fix it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def _render(results: list, failed: list) -> str:  # type: ignore[type-arg]
    lines = []
    width = max(len(c.name) for c in results) + 1
    for c in results:
        mark = "*" if c.required else " "
        status = c.status.value if c.ok else c.status.value.upper()
        pad = f"{'':8} {'':{width}}  "
        inline = c.fix and len(c.detail) + len(c.fix) < 90
        lines.append(f"{status:8} {(c.name + mark).ljust(width)}  {c.detail}" + (f"; fix: {c.fix}" if inline else ""))
        if not c.ok:
            lines.extend(f"{pad}tried {place}" for place in c.data.get("tried", []))
        if c.fix and not inline:
            lines.append(f"{pad}fix: {c.fix}")
    lines.append("")
    if failed:
        lines.append(f"not ready: required check(s) failed: {', '.join(c.name for c in failed)}  (* = required)")
    else:
        lines.append("ready: every required check (*) is ok")
    return "\n".join(lines) + "\n"


def doctor(
    as_json: bool = typer.Option(False, "--json", help="One JSON document: {ok, required_failed, checks}."),
    docker: bool = typer.Option(False, "--docker", help="Also check Docker (the CLI, and that `docker info` works); then it is required."),
    engine: Optional[Path] = typer.Option(None, "--engine", help="libchatllm.so or its directory (default: $QASR_CHATLLM_LIB, then ./chatllm.cpp)."),
    models_dir: Optional[Path] = typer.Option(None, "--models-dir", help="Models directory (default: $QASR_MODELS_DIR, then ./models)."),
) -> None:
    """Check Python, qasr, libchatllm, ggml, ffmpeg and the shim, audio decoders, models, lab tools.

    Required (*): python, qasr, libchatllm, the ffmpeg shim (or ffmpeg when the shim is off),
    soundfile, soxr; with --docker also docker. Exit 0 when all required checks are ok, 1 otherwise.
    Also the chatllm.cpp checkout behind the engine: an empty submodule (and the two steps to fill
    it), or WARN when it is at another commit than the one qasr is tested with.
    """
    from qasr.cli.output import emit
    from qasr.doctor import Options, required_failures, run_checks
    from qasr.errors import EXIT_FAILURE

    results = run_checks(Options(engine=str(engine) if engine else None, models_dir=str(models_dir) if models_dir else None,
                                 docker=docker))
    failed = required_failures(results)
    if as_json:
        doc = {"ok": not failed, "required_failed": [c.name for c in failed], "checks": [c.to_dict() for c in results]}
        emit(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        emit(_render(results, failed))
    if failed:
        raise typer.Exit(EXIT_FAILURE)
