"""Run one provider over the items in a child process (`qasr.benchmark.child`) and collect what it said.

The parent only reads the child's records (`qasr.channel`), advances the progress bar and follows the child's
peak RSS (`qasr.processes.Child.poll`) as a fallback for the figure the child reports itself. A
child that ends early (a native abort, a kill) leaves its remaining files failed with the reason
(``killed by SIGABRT (signal 6)`` and the last line of its log), never a crashed benchmark.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qasr.benchmark.dataset import Item
from qasr.channel import Receiver
from qasr.processes import Child
from qasr.progress import Progress, SilentProgress
from qasr.benchmark.child import Job
from qasr.spec import EngineSpec


@dataclass
class Outcome:
    """One file through one provider: the text and timings, or the error."""

    source: str
    reference: str
    language: str
    text: str | None = None
    error: str | None = None
    audio_seconds: float | None = None
    inference_seconds: float | None = None
    ttft_seconds: float | None = None


@dataclass
class ProviderRun:
    """Everything one provider's child reported. ``error`` is set when it could not start or died."""

    name: str
    outcomes: list[Outcome]
    load_seconds: float | None = None
    peak_rss_bytes: int = 0
    streams: bool = False
    describe: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    reason: str | None = None  # "engine not found", "model file missing or corrupt", "load failed", "crashed"
    exit: str = ""

    @property
    def done(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is None and o.text is not None]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _apply(run: ProviderRun, by_source: dict[str, Outcome], event: dict[str, Any]) -> bool:
    """Fold one event into ``run``; True when a file is finished (to advance the bar)."""
    kind = event.get("kind")
    if kind == "loaded":
        run.load_seconds, run.streams, run.describe = event["load_seconds"], event["streams"], event["describe"]
    elif kind == "unavailable":
        run.error, run.reason = event["message"], event["reason"]
    elif kind in ("file", "failed") and event.get("source") in by_source:
        outcome = by_source[event["source"]]
        if kind == "failed":
            outcome.error = event["error"]
        else:
            outcome.text = event["text"]
            outcome.audio_seconds, outcome.inference_seconds = event["audio_seconds"], event["inference_seconds"]
            outcome.ttft_seconds = event["ttft_seconds"]
        return True
    elif kind == "done":
        run.peak_rss_bytes = int(event["peak_rss_bytes"])
    return False


def run_provider(
    name: str, spec: EngineSpec, items: list[Item], work_dir: Path, progress: Progress | None = None
) -> ProviderRun:
    """The figures of provider ``name`` loaded from ``spec`` over ``items``, measured in a fresh child
    process (log in ``work_dir``)."""
    progress = progress or SilentProgress()
    outcomes = [Outcome(str(i.audio), i.reference, i.language) for i in items]
    run = ProviderRun(name, outcomes)
    by_source = {o.source: o for o in outcomes}
    job = work_dir / f"{name}.job.json"
    job.write_text(Job(spec.replace(provider=name), list(by_source)).to_json(), encoding="utf-8")
    progress.start(name, len(items), label=name)
    with Child("qasr.benchmark.child", [str(job)], log=work_dir / f"{name}.log", stdout="pipe", text=False) as child:
        assert child.stdout is not None
        for event in Receiver(child.stdout):
            child.poll()
            if _apply(run, by_source, event):
                progress.advance(name)
        child.wait()
        run.exit = child.exit_reason()
        run.peak_rss_bytes = run.peak_rss_bytes or child.peak
        if run.error is None and child.returncode != 0:
            tail = next((line for line in reversed(child.stderr_tail()) if line.strip()), "no message")
            run.error, run.reason = f"the {name} process ended early ({run.exit}): {tail}", "crashed"
    for outcome in outcomes:
        if outcome.text is None and outcome.error is None:
            outcome.error = f"not transcribed: {run.error or 'the provider process ended'}"
    return run
