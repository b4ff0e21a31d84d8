"""``reload`` and ``restart`` over any provider (``qasr lab run reload --provider NAME``), as user scenarios.

Our built-in scenarios drive our libchatllm binding directly. A team choosing an engine asks the
same questions of the others (issue 25): does it leak when a model is loaded and closed, or when
one instance transcribes N times? These two classes ask them through `qasr.providers.make_provider`,
the one way into every engine, and are written exactly as a user's scenario is
(`qasr.lab.userscenario`): the lab's child runs them with the same phases, samples, verdicts and
reports. ``--provider`` with ``reload`` or ``restart`` picks them (`qasr.lab.config.PROVIDER_SCENARIOS`).

- `ProviderReload`: every iteration creates the provider (loads the model), transcribes iteration
  i's audio, and closes it. ``cycles_models``: judged with the reload threshold, max(1 MiB, 0.5% of
  the model's bytes). What ``close()`` does is the provider's own: qwen3-chatllm drops its
  references without destroying the native model (upstream aborts in destroy), so on the real
  engine every iteration keeps a model: the lab then reports that, as it should.
- `ProviderRestart`: one provider created in setup; every iteration transcribes once (qwen3-chatllm
  restarts the engine's conversation before each file, as always); closed in teardown.

**Which process is sampled.** A provider whose engine runs in a process of its own (``crispasr``:
``engine_pid``) is sampled there (`qasr.lab.engineproc`: /proc/PID for RSS, RssAnon, USS and the
peak; the live heap from the engine process itself, over its channel), and the lab's own process
becomes a second series. On ``restart`` both are sampled at ``end``: the engine series is that one
process over N calls. On ``reload`` every iteration has a new engine process, which ``close`` ends,
so its series is sampled at ``infer`` (after the call, before close): each new process's footprint,
which cannot carry anything from one iteration to the next; what a reload could leak stays in the
lab's own process (the provider's parent side), judged at ``end``.

``-m`` is the provider's model: a chatllm.cpp file for qwen3-chatllm, a CTranslate2 directory (or a
model name) for faster-whisper, the provider's own file otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qasr.lab.scenarios import Outcome

if TYPE_CHECKING:
    from qasr.lab.userscenario import LabContext
    from qasr.pipeline.results import TranscriptionResult
    from qasr.providers.base import Provider
    from qasr.spec import CallOptions, EngineSpec


def provider_options(lab: LabContext) -> tuple[EngineSpec, CallOptions]:
    """The run's inputs as the provider's engine spec (the model under the field this provider
    reads) and its per-call options."""
    from qasr.providers.chain import WHISPER
    from qasr.spec import CallOptions, EngineSpec

    # faster-whisper reads a CTranslate2 model from its own field; the others read ``model``.
    model = {"whisper_model": lab.model} if lab.provider == WHISPER else {"model": lab.model}
    spec = EngineSpec(provider=lab.provider, **model, language=lab.language, threads=lab.threads,  # type: ignore[arg-type]
                      max_length=lab.max_length, engine=lab.engine, max_tokens=lab.max_tokens)  # fmt: skip
    return spec, CallOptions(context=lab.context)


def _make(lab: LabContext, options: tuple[EngineSpec, CallOptions]) -> Provider:
    from qasr.providers import make_provider

    return make_provider(*options, on_fallback=None)


def _outcome(result: TranscriptionResult, load_seconds: float | None) -> Outcome:
    f = result.figures
    extra: dict[str, Any] = {"raw_text": getattr(result, "raw_text", None)}
    return Outcome(text=result.text, load_seconds=load_seconds, ttft_seconds=f.ttft_seconds, tokens=f.tokens,
                   tokens_per_second=f.tokens_per_second, rtf=f.rtf, extra=extra)  # fmt: skip


class ProviderReload:
    """create the provider -> transcribe -> close, every iteration."""

    cycles_models = True
    #: With an engine process of its own, the engine's series ends here: after ``close`` it is gone.
    engine_final_phase = "infer"

    def __init__(self, lab: LabContext) -> None:
        self.lab = lab
        self.options = provider_options(lab)

    def iteration(self, i: int) -> Outcome:
        audio, _ = self.lab.pick(i)
        with self.lab.phase("load"):
            provider = _make(self.lab, self.options)
            self.lab.watch(provider)
        with self.lab.phase("infer", full=True):  # the engine process's last sample before close ends it
            result = provider.transcribe(audio)
        with self.lab.phase("close"):
            provider.close()
        return _outcome(result, provider.load_seconds)


class ProviderRestart:
    """One provider for the whole run; every iteration transcribes once."""

    cycles_models = False

    def __init__(self, lab: LabContext) -> None:
        self.lab = lab
        self.options = provider_options(lab)
        self.provider: Provider | None = None

    def setup(self) -> None:
        self.provider = _make(self.lab, self.options)
        self.lab.watch(self.provider)
        self.load_seconds = self.provider.load_seconds

    def iteration(self, i: int) -> Outcome:
        assert self.provider is not None
        audio, _ = self.lab.pick(i)
        with self.lab.phase("infer"):
            result = self.provider.transcribe(audio)
        return _outcome(result, None)

    def teardown(self) -> None:
        if self.provider is not None:
            self.provider.close()
