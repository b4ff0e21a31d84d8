"""Figures per provider, and the go/no-go of a candidate against a baseline.

The criteria (each settable on the command line) are the questions a team asks before switching:
is the candidate real-time here (RTF below ``max_rtf``), is it clearly more accurate (its error rate
at least ``min_improvement`` lower than the baseline's, per metric, on the files both transcribed),
does it fit the memory budget (peak RSS below ``rss_budget_bytes``), and did it transcribe every
file (at most ``max_failed`` failures).

GO: every criterion holds. NO-GO: the candidate produced no figures, or it is *less* accurate than
the baseline on a metric (switching would make transcripts worse), or every criterion failed.
CONDITIONAL otherwise, naming the criteria that failed: the team decides whether, say, a larger
memory budget or a smaller accuracy gain is acceptable. When the baseline is perfect on a metric
(0 errors), the candidate passes that check only by being perfect too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from qasr.benchmark.metrics import corpus_rate
from qasr.benchmark.runner import Outcome, ProviderRun

GO, CONDITIONAL, NO_GO = "GO", "CONDITIONAL", "NO-GO"
METRICS = (("wer", "en", "WER"), ("cer", "zh", "CER"))
MIB = 1024 * 1024


@dataclass(frozen=True)
class Criteria:
    max_rtf: float = 1.0
    min_improvement: float = 0.2
    rss_budget_bytes: int = 4096 * MIB
    max_failed: int = 0


@dataclass
class Summary:
    """One provider's figures over the files it transcribed: corpus WER / CER, aggregate RTF..."""

    name: str
    files: int
    failed: int
    wer: float | None
    cer: float | None
    rtf: float | None
    ttft_seconds: float | None
    load_seconds: float | None
    peak_rss_bytes: int
    error: str | None = None


def error_rate(outcomes: list[Outcome], language: str) -> float | None:
    return corpus_rate(((o.reference, o.text or "") for o in outcomes if o.language == language), language)


def summarise(run: ProviderRun) -> Summary:
    """RTF is total inference time over total audio time; TTFT the mean over files that report one."""
    done = run.done
    audio = sum(o.audio_seconds or 0.0 for o in done)
    ttfts = [o.ttft_seconds for o in done if o.ttft_seconds is not None]
    return Summary(
        name=run.name, files=len(run.outcomes), failed=len(run.outcomes) - len(done),
        wer=error_rate(done, "en"), cer=error_rate(done, "zh"),
        rtf=sum(o.inference_seconds or 0.0 for o in done) / audio if audio else None,
        ttft_seconds=sum(ttfts) / len(ttfts) if ttfts and run.streams else None,
        load_seconds=run.load_seconds, peak_rss_bytes=run.peak_rss_bytes, error=run.error,
    )  # fmt: skip


@dataclass
class Check:
    """One criterion: held or not, in words; ``worse`` marks an accuracy check the candidate lost outright."""

    name: str
    passed: bool
    detail: str
    worse: bool = False


@dataclass
class Decision:
    verdict: str
    candidate: str
    baseline: str | None
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def line(self) -> str:
        """The decision in one line, e.g. ``CONDITIONAL: qwen3-chatllm vs faster-whisper (failed: real-time)``."""
        against = f" vs {self.baseline}" if self.baseline else ""
        failed = f" (failed: {', '.join(c.name for c in self.failed)})" if self.failed else ""
        return f"{self.verdict}: {self.candidate}{against}{failed}"

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "candidate": self.candidate, "baseline": self.baseline,
                "checks": [asdict(c) for c in self.checks], "line": self.line()}  # fmt: skip


def _accuracy(candidate: ProviderRun, baseline: ProviderRun | None, criteria: Criteria) -> list[Check]:
    """One check per metric the data has, on the files both providers transcribed."""
    checks = []
    base_done = {o.source: o for o in baseline.done} if baseline is not None else {}
    for key, language, label in METRICS:
        mine = [o for o in candidate.outcomes if o.language == language]
        if not mine:
            continue
        name = f"{label} at least {criteria.min_improvement:.0%} lower"
        common = [o for o in candidate.done if o.language == language and o.source in base_done]
        if not common:
            why = "the baseline did not run" if baseline is None or baseline.error else "no file transcribed by both"
            checks.append(Check(name, False, f"{label} not compared: {why}"))
            continue
        c, b = error_rate(common, language), error_rate([base_done[o.source] for o in common], language)
        assert c is not None and b is not None
        if b == 0:
            passed, gain = c == 0, "both 0" if c == 0 else "baseline 0"
        else:
            gain_value = (b - c) / b
            passed, gain = gain_value >= criteria.min_improvement, f"{gain_value:.0%} lower" if gain_value >= 0 else f"{-gain_value:.0%} higher"
        checks.append(Check(name, passed, f"{label} {c:.3f} vs {b:.3f} ({gain}, {len(common)} files)", worse=c > b))
    return checks


def decide(candidate: ProviderRun, baseline: ProviderRun | None, criteria: Criteria = Criteria()) -> Decision:
    """The verdict of the module doc, with every check spelled out."""
    mine = summarise(candidate)
    decision = Decision(GO, candidate.name, baseline.name if baseline is not None else None)
    failed_ok = mine.failed <= criteria.max_failed and mine.error is None
    decision.checks.append(Check("no failed file", failed_ok, f"{mine.failed} of {mine.files} failed" + (f": {mine.error}" if mine.error else "")))
    rtf_ok = mine.rtf is not None and mine.rtf < criteria.max_rtf
    decision.checks.append(Check("real-time", rtf_ok, f"RTF {mine.rtf:.3f} (< {criteria.max_rtf})" if mine.rtf is not None else "RTF not measured"))
    decision.checks += _accuracy(candidate, baseline, criteria)
    rss_ok = 0 < mine.peak_rss_bytes < criteria.rss_budget_bytes
    decision.checks.append(Check("memory", rss_ok, f"peak RSS {mine.peak_rss_bytes / MIB:.0f} MiB (budget {criteria.rss_budget_bytes / MIB:.0f} MiB)"))
    if not decision.failed:
        return decision
    nothing = not candidate.done
    decision.verdict = NO_GO if nothing or any(c.worse for c in decision.checks) or len(decision.failed) == len(decision.checks) else CONDITIONAL
    return decision
