"""Experiments: a folder with a README and a ``config.toml``, run by ``qasr experiment run NAME``.

An experiment holds no logic of its own: its config names lab runs (`qasr.lab`), an optional
comparison of two of them, and optional subtitle jobs (`qasr.pipeline`). This module reads the
config, resolves models (registry names or paths) and audio (relative to the project root), runs the
steps in order and writes ``results/<experiment>/<time>/experiment.md`` linking every report.
With several engine builds (``engines = ["label=path", ...]`` or ``--engine`` repeated) every step
runs once per build, labelled ``run@label``, so one report puts the builds side by side.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qasr.errors import UsageError
from qasr.fileio import write_atomic

if TYPE_CHECKING:
    from qasr.lab.config import ScenarioSpec
    from qasr.lab.engines import EngineBuild

ENV_EXPERIMENTS = "QASR_EXPERIMENTS_DIR"
ENV_HOME = "QASR_HOME"


@dataclass
class Overrides:
    """Command-line overrides of an experiment's config (CI points them at test inputs)."""

    iterations: int | None = None
    model: str | None = None
    model_b: str | None = None
    aligner: str | None = None
    audio: list[str] = field(default_factory=list)
    #: ``[LABEL=]PATH`` of each libchatllm build (none: the config's ``engines``, else the default engine).
    engines: list[str] = field(default_factory=list)
    results: str | None = None
    allocator: str | None = None
    #: Run on synthetic stand-ins of the config's models (`qasr.engine.synth.catalog.stand_in`).
    synthetic: bool = False
    #: A cap on each engine call's tokens (default with ``synthetic``: SYNTHETIC_MAX_TOKENS).
    max_tokens: int | None = None


#: Tokens per engine call on synthetic models, which never stop by themselves: what the lab uses.
SYNTHETIC_MAX_TOKENS = 16


def load_config(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def experiments_dir() -> Path:
    """``$QASR_EXPERIMENTS_DIR``, ``./experiments``, or the source tree's ``experiments/``."""
    env = os.environ.get(ENV_EXPERIMENTS)
    if env:
        return Path(env)
    here = Path.cwd() / "experiments"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "experiments"


def find(name: str) -> Path:
    """An experiment folder by name (``02-restart-vs-reload``), unique prefix (``02``) or path."""
    p = Path(name)
    if (p / "config.toml").is_file():
        return p
    base = experiments_dir()
    matches = sorted(d for d in base.glob(f"{name}*") if (d / "config.toml").is_file()) if base.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(d.name for d in list_experiments()) or f"none in {base}"
    if not matches:
        raise UsageError(f"no experiment {name!r}; known: {known}")
    raise UsageError(f"{name!r} matches several experiments: {', '.join(m.name for m in matches)}")


def list_experiments() -> list[Path]:
    base = experiments_dir()
    return sorted(d for d in base.iterdir() if (d / "config.toml").is_file()) if base.is_dir() else []


def project_root(experiment: Path) -> Path:
    """Where the config's relative audio paths start: ``$QASR_HOME`` or the folder above experiments/."""
    env = os.environ.get(ENV_HOME)
    return Path(env) if env else experiment.resolve().parent.parent


def _model(value: str | None, synthetic: bool = False) -> str | None:
    """A registry name or a path, as a path (registry names need `qasr models pull` first, or with
    ``synthetic`` become their synthetic stand-ins, written on first use)."""
    if not value:
        return None
    if synthetic:
        from qasr.engine.synth.catalog import stand_in
        from qasr.progress import make_progress

        return str(stand_in(value, progress=make_progress(None, "bytes")))
    try:
        from qasr.engine.registry import resolve_model
    except ImportError:  # registry not installed in this build
        return value
    return str(resolve_model(value))


def _audio(values: list[str], root: Path) -> list[str]:
    out = []
    for v in values:
        p = Path(v)
        out.append(str(p if p.is_absolute() else root / p))
    return out


def plan(experiment: Path, over: Overrides) -> dict[str, Any]:
    """The config with overrides applied and every model and audio path resolved."""
    cfg = load_config(experiment / "config.toml")
    inputs = dict(cfg.get("inputs", {}))
    root = project_root(experiment)
    inputs["model"] = over.model or inputs.get("model")
    inputs["model_b"] = over.model_b or inputs.get("model_b")
    inputs["aligner"] = over.aligner or inputs.get("aligner")
    inputs["audio"] = over.audio or _audio(list(inputs.get("audio", [])), root)
    if over.iterations:
        inputs["iterations"] = over.iterations
    if over.max_tokens or over.synthetic:
        inputs["max_tokens"] = over.max_tokens or inputs.get("max_tokens") or SYNTHETIC_MAX_TOKENS
    specs = [_spec(r) for r in cfg.get("runs", [])]
    needs = {"model": any(s is None or not s.uses_aligner for s in specs) or bool(cfg.get("subtitles")),
             "model_b": any(s is not None and s.needs_model_b for s in specs),
             "aligner": any(s is not None and (s.uses_aligner or s.needs_aligner) for s in specs) or bool(cfg.get("subtitles"))}
    for key, needed in needs.items():
        if needed:
            if not inputs.get(key):
                raise UsageError(f"experiment {experiment.name} needs a {key.replace('_', '-')} (config [inputs] {key}, or --{key.replace('_', '-')})")
            inputs[key] = _model(inputs[key], over.synthetic)
    return {"name": experiment.name, "dir": str(experiment), "config": cfg, "inputs": inputs, "synthetic": over.synthetic,
            "engines": _engines(over.engines, list(cfg.get("engines", [])), root)}


def _engines(given: list[str], configured: list[str], root: Path) -> list[EngineBuild | None]:
    """The builds to run on, resolved and identified before any run; ``[None]``: the default engine,
    found by the child as always. The config's relative paths start at the project root."""
    from qasr.lab.engines import resolve_engines, split_label

    if not given and not configured:
        return [None]
    specs = list(given)
    for spec in [] if given else configured:
        label, path = split_label(str(spec))
        full = path if Path(path).expanduser().is_absolute() else str(root / path)
        specs.append(f"{label}={full}" if label else full)
    return list(resolve_engines(specs))


def _spec(run: dict[str, Any]) -> ScenarioSpec | None:
    """The lab scenario a run names (None if unknown: `validate` reports that when the run starts)."""
    from qasr.lab.config import SCENARIOS

    return SCENARIOS.get(str(run.get("scenario", "")))


def run_experiment(experiment: Path, over: Overrides, *, show_progress: bool = True) -> dict[str, Any]:
    """Run every step of an experiment; return (and write) its summary."""
    p = plan(experiment, over)
    cfg, inputs = p["config"], p["inputs"]
    results = Path(over.results or cfg.get("results", "results"))
    out_dir = results / p["name"] / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    done: dict[str, Any] = {"experiment": p["name"], "question": cfg.get("question"), "dir": str(out_dir), "runs": {}, "subtitles": [],
                            "synthetic": p["synthetic"], "max_tokens": inputs.get("max_tokens")}
    engines: list[EngineBuild | None] = p["engines"]
    several = len(engines) > 1
    if several:
        done["engines"] = [e.to_dict() for e in engines if e is not None]
        done["compare"] = {}
    for engine in engines:
        tag = f"@{engine.label}" if several and engine is not None else ""
        for spec in cfg.get("runs", []):
            label = spec.get("label", spec["scenario"]) + tag
            done["runs"][label] = _lab_run(spec, inputs, engine, over, out_dir, show_progress)
            if several:
                done["runs"][label]["engine"] = engine.label  # type: ignore[union-attr]
        pair = cfg.get("compare")
        if pair:
            result = _compare(done, [x + tag for x in pair], out_dir / f"compare{tag.replace('@', '-')}")
            if several:
                done["compare"][engine.label] = result  # type: ignore[union-attr]
            else:
                done["compare"] = result
        for job in cfg.get("subtitles", []):
            done["subtitles"].append(_subtitles(job, inputs, out_dir, engine, tag, show_progress))
    write_atomic(out_dir / "experiment.json", json.dumps(done, indent=2, default=str))
    write_atomic(out_dir / "experiment.md", render(done, cfg))
    return done


def _lab_run(spec: dict[str, Any], inputs: dict[str, Any], engine: EngineBuild | None, over: Overrides, out_dir: Path,
             show_progress: bool) -> dict[str, Any]:
    """One ``[[runs]]`` entry as a lab run on one engine; what experiment.json keeps of it."""
    from qasr.lab.config import RunConfig, validate
    from qasr.lab.runner import run as lab_run

    run_cfg = validate(
        RunConfig(
            scenario=spec["scenario"],
            model=inputs.get("model"),
            model_b=inputs.get("model_b"),
            aligner=inputs.get("aligner"),
            audio=list(inputs["audio"]),
            references=list(inputs.get("references", [])),
            iterations=int(spec.get("iterations", inputs.get("iterations", 100))),
            allocator=over.allocator or spec.get("allocator", "glibc"),
            engine=str(engine.path) if engine is not None else None,
            language=inputs.get("language"),
            context=spec.get("context", inputs.get("context")),
            max_length=inputs.get("max_length"),
            max_tokens=inputs.get("max_tokens"),
            results_dir=str(out_dir / "runs"),
            postprocess=spec.get("postprocess"),
        )
    )
    s = lab_run(run_cfg, show_progress=show_progress).summary
    crash = s.get("crash")
    return {"dir": s["run_dir"], "status": s["status"], "verdict": s.get("verdict"), "iterations": s["iterations_completed"],
            "crash": crash and {k: crash.get(k) for k in ("signal_name", "iteration", "phase")}}


def _compare(done: dict[str, Any], pair: list[str], out_dir: Path) -> dict[str, Any]:
    """compare.md/json/png of two runs in ``out_dir`` (or why not)."""
    from qasr.lab.compare import compare, write

    a, b = (done["runs"].get(x) for x in pair)
    if not a or not b:
        return {"skipped": f"compare needs runs {pair}"}
    try:
        result = compare(Path(a["dir"]), Path(b["dir"]))
    except UsageError as exc:
        return {"skipped": str(exc)}
    files = write(result, out_dir)
    return {"files": [str(f) for f in files]}


def _subtitles(job: dict[str, Any], inputs: dict[str, Any], out_dir: Path, engine: EngineBuild | None, tag: str,
               show_progress: bool) -> dict[str, Any]:
    """One subtitle job through the long-audio pipeline (`qasr.pipeline.longform`) on one engine."""
    from qasr.pipeline.longform import LongformOptions, run_longform
    from qasr.pipeline.writers import get_writer

    fmt = job.get("format", "srt")
    target = out_dir / f"{job.get('name', 'subtitles')}{tag}.{fmt}"
    options = LongformOptions.from_keywords(
        inputs["model"], inputs["aligner"], language=job.get("language", inputs.get("language")), itn=bool(job.get("itn", False)),
        zh_tw=bool(job.get("zh_tw", False)), opencc=job.get("opencc"), engine=engine.path if engine is not None else None,
        max_tokens=inputs.get("max_tokens"),
    )  # fmt: skip
    result = run_longform(inputs["audio"][0], target, get_writer(fmt), options)
    return {"output": str(target), **({"engine": engine.label} if tag and engine is not None else {}), **result.to_dict()}


def render(done: dict[str, Any], cfg: dict[str, Any]) -> str:
    """experiment.md: every run, comparison and subtitle job, with links to their reports."""
    from qasr.lab.analysis import crash_text
    from qasr.lab.engines import engine_table

    lines = [f"# Experiment {done['experiment']}", ""]
    if done.get("question"):
        lines += [f"Question: {done['question']}", ""]
    if done.get("synthetic"):
        from qasr.engine.modelfile import SYNTHETIC_NOTE

        lines += [f"**Ran on SYNTHETIC models** ({SYNTHETIC_NOTE}; {done.get('max_tokens')} tokens per engine call). "
                  "Memory and speed figures are at the real sizes; word error rates and transcripts are not results.", ""]
    if done.get("engines"):
        lines += ["Every step ran once on each engine build below; a run labelled `run@engine` ran on that build.", "",
                  *engine_table(done["engines"]), ""]
    if done["runs"]:
        lines += ["| run | status | iterations | verdict | ended by | report |", "|---|---|---|---|---|---|"]
        for label, r in done["runs"].items():
            ended = crash_text(r["crash"]) if r.get("crash") else "—"
            lines.append(f"| {label} | {r['status']} | {r['iterations']} | {r.get('verdict') or 'n/a'} | {ended} | `{r['dir']}/report.md` |")
        lines.append("")
    compares = done.get("compare") or {}
    for name, c in compares.items() if done.get("engines") else ([("", compares)] if compares else []):
        where = f" ({name})" if name else ""
        lines += [f"Comparison{where}: {c.get('skipped') or ', '.join(f'`{f}`' for f in c['files'])}", ""]
    for s in done.get("subtitles", []):
        lines += [
            f"Subtitles{' (' + s['engine'] + ')' if s.get('engine') else ''}: `{s['output']}` — {s['cues']} cues from {s['chunks']} chunk(s) ({s['aligned_chunks']} aligned), "
            f"{s['audio_seconds']} s of audio in {s['wall_seconds']} s (VAD {s['vad_seconds']} s, ASR {s['transcribe_seconds']} s, "
            f"aligner {s['align_seconds']} s); peak RSS {s['parent_peak_rss_bytes'] / 2**20:.0f} MiB here, "
            f"{s['transcribe_peak_rss_bytes'] / 2**20:.0f} MiB in the ASR child, {s['align_peak_rss_bytes'] / 2**20:.0f} MiB in the aligner child.",
            "",
        ]
    if cfg.get("reading"):
        lines += ["## How to read it", "", cfg["reading"].strip(), ""]
    return "\n".join(lines)
