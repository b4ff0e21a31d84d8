"""``qasr experiment``: list the experiments and run one (thin over qasr.experiments)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(help="Experiments: one folder each under experiments/, run one at a time.", no_args_is_help=True, rich_markup_mode=None)


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List the experiments and their questions."""
    from qasr.experiments import load_config, list_experiments

    rows = [{"name": d.name, "question": load_config(d / "config.toml").get("question", "")} for d in list_experiments()]
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for r in rows:
        print(f"{r['name']:28s} {r['question']}")


@app.command("run", no_args_is_help=True)
def run_cmd(
    name: str = typer.Argument(..., help="Experiment name, unique prefix (02) or folder."),
    iterations: Optional[int] = typer.Option(None, "--iterations", "-n", min=1, help="Override the iterations of every run."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="ASR model (path or registry name)."),
    model_b: Optional[str] = typer.Option(None, "--model-b", help="Second ASR model (switch)."),
    aligner: Optional[str] = typer.Option(None, "--aligner", "-a", help="ForcedAligner model (path or registry name)."),
    audio: List[str] = typer.Option([], "--audio", help="Audio instead of the config's."),
    engines: List[str] = typer.Option(
        [], "--engine", help="libchatllm.so or its directory, as [LABEL=]PATH; repeat it to run every step on each build (runs labelled run@LABEL)."),
    allocator: Optional[str] = typer.Option(None, "--allocator", help="Allocator for every run."),
    results: Optional[str] = typer.Option(None, "--results", help="Where results go (default: results/)."),
    synthetic: bool = typer.Option(
        False, "--synthetic", help="Run on SYNTHETIC stand-ins of the config's models (random weights, the published shapes; "
        "written to the models dir on first use): memory and speed at the real sizes without the weights."),
    max_tokens: Optional[int] = typer.Option(
        None, "--max-tokens", min=1, help="Stop each engine call after N tokens (default with --synthetic: 16)."),
    as_json: bool = typer.Option(False, "--json", help="Print the experiment summary as JSON."),
) -> None:
    """Run every step of one experiment and write results/<experiment>/<time>/experiment.md."""
    from qasr.experiments import Overrides, find, run_experiment

    done = run_experiment(
        find(name),
        Overrides(iterations=iterations, model=model, model_b=model_b, aligner=aligner, audio=list(audio),
                  engines=list(engines), results=results, allocator=allocator,
                  synthetic=synthetic, max_tokens=max_tokens),
        show_progress=not as_json,
    )
    if as_json:
        print(json.dumps(done, indent=2, default=str))
    else:
        for label, r in done["runs"].items():
            print(f"{label:16s} {r['status']:11s} {r['iterations']:4d} iterations  verdict {r.get('verdict') or 'n/a'}")
        print(f"written: {Path(done['dir']) / 'experiment.md'}")
