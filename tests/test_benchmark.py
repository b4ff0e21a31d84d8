"""qasr benchmark: the arithmetic (WER/CER against jiwer), the data layouts, the decision rules on
constructed figures, the per-provider child runs, and the whole command on ../shared/data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jiwer
import pytest

from conftest import SHARED_DATA, double_env, real_engine, requires_real_engine, requires_shared_data, run_qasr
from qasr.benchmark.dataset import load_dataset, scoring_language
from qasr.benchmark.decision import CONDITIONAL, GO, MIB, NO_GO, Criteria, decide, summarise
from qasr.benchmark.metrics import corpus_rate, count_errors, normalise
from qasr.benchmark.runner import Outcome, ProviderRun, run_provider
from qasr.errors import UsageError
from qasr.spec import EngineSpec

# -- metrics ---------------------------------------------------------------------------------------

ENGLISH = [("And so, my fellow Americans: ask not!", "and so my fellow american ask not what"),
           ("It was the first great sorrow", "it was a first great sorrow of his"),
           ("Hello world.", "")]  # fmt: skip


def test_wer_is_jiwer_over_the_normalised_corpus() -> None:
    refs = [normalise(r, "en") for r, _ in ENGLISH]
    hyps = [normalise(h, "en") for _, h in ENGLISH]
    assert refs[0] == "and so my fellow americans ask not"
    assert corpus_rate(ENGLISH, "en") == pytest.approx(jiwer.wer(refs, hyps))
    one = count_errors(*ENGLISH[0], "en")
    assert one.rate == pytest.approx(jiwer.wer(refs[0], hyps[0])) and one.length == 7


def test_cer_normalises_both_sides_with_itn_and_opencc() -> None:
    reference, hypothesis = "我的电话号码是一三八零零一三八零零零。", "我的電話號碼是 13800138000"
    assert jiwer.cer(reference, hypothesis) > 0.5  # as written, the forms differ almost everywhere
    assert normalise(reference, "zh") == normalise(hypothesis, "zh") == "我的电话号码是13800138000"
    assert count_errors(reference, hypothesis, "zh").errors == 0
    pairs = [("广州市房地产中介协会分析", "广州市房地产中介协会"), ("今天天气很好", "今天天汽很好啊")]
    expected = jiwer.cer([normalise(r, "zh") for r, _ in pairs], [normalise(h, "zh") for _, h in pairs])
    assert corpus_rate(pairs, "zh") == pytest.approx(expected) == pytest.approx((2 + 2) / (12 + 6))


def test_scoring_language() -> None:
    assert scoring_language("广州市房地产") == "zh" and scoring_language("Hello 世界 and more words") == "en"
    assert scoring_language("hello", "Chinese") == "zh" and scoring_language("你好", "en") == "en"


# -- data layouts ----------------------------------------------------------------------------------


def _tone(path: Path) -> Path:
    import soundfile

    from conftest import sine

    soundfile.write(str(path), sine(0.5), 16_000)
    return path


def test_a_directory_pairs_audio_with_txt(tmp_path: Path) -> None:
    _tone(tmp_path / "a.wav"), _tone(tmp_path / "b.flac"), _tone(tmp_path / "lonely.wav")
    shutil.copy(tmp_path / "a.wav", tmp_path / "a.ogg")
    (tmp_path / "a.txt").write_text("hello there\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("广州市", encoding="utf-8")
    items = load_dataset(tmp_path)
    assert [(i.audio.name, i.reference, i.metric) for i in items] == [("a.ogg", "hello there", "wer"), ("a.wav", "hello there", "wer"), ("b.flac", "广州市", "cer")]


def test_a_tsv_manifest(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    _tone(tmp_path / "clips" / "x.wav")
    manifest = tmp_path / "set.tsv"
    manifest.write_text("audio\treference\tlanguage\n# a comment\nclips/x.wav\t你好\ten\n\nclips/x.wav\thello\n", encoding="utf-8")
    items = load_dataset(manifest)
    assert [(i.audio, i.reference, i.language) for i in items] == [(tmp_path / "clips" / "x.wav", "你好", "en"), (tmp_path / "clips" / "x.wav", "hello", "en")]


@pytest.mark.parametrize(
    ("content", "message"),
    [("x.wav\n", "expected audio<TAB>reference"), ("missing.wav\thi\n", "audio file not found"), ("x.wav\t  \n", "reference transcript is empty"), ("", "no audio file with a reference")],
)
def test_bad_data_is_a_usage_error_naming_the_line(tmp_path: Path, content: str, message: str) -> None:
    _tone(tmp_path / "x.wav")
    (tmp_path / "m.tsv").write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=message):
        load_dataset(tmp_path / "m.tsv")
    with pytest.raises(UsageError, match="not found"):
        load_dataset(tmp_path / "nothing")


# -- decision rules on constructed figures ---------------------------------------------------------


def _run(name: str, texts: list[str | None], *, rtf: float = 0.5, rss_mib: int = 500, streams: bool = True, error: str | None = None) -> ProviderRun:
    """A provider's figures as if measured: one 10 s English file per text (None = that file failed)."""
    outcomes = []
    for i, text in enumerate(texts):
        o = Outcome(f"f{i}.wav", "one two three four five six seven eight nine ten", "en")
        if text is None:
            o.error = "failed"
        else:
            o.text, o.audio_seconds, o.inference_seconds, o.ttft_seconds = text, 10.0, 10.0 * rtf, 0.1 * (i + 1)
        outcomes.append(o)
    return ProviderRun(name, outcomes, load_seconds=1.0, peak_rss_bytes=rss_mib * MIB, streams=streams, error=error)


PERFECT = "one two three four five six seven eight nine ten"
TWO_WRONG = "one two three four five six seven eight x y"  # WER 0.2
FOUR_WRONG = "one two three four five six a b c d"  # WER 0.4


def test_go_when_every_criterion_holds() -> None:
    d = decide(_run("qwen", [TWO_WRONG] * 2), _run("whisper", [FOUR_WRONG] * 2))
    assert d.verdict == GO and not d.failed
    assert [c.name for c in d.checks] == ["no failed file", "real-time", "WER at least 20% lower", "memory"]
    assert d.checks[2].detail == "WER 0.200 vs 0.400 (50% lower, 2 files)"


@pytest.mark.parametrize(
    ("candidate", "criteria", "failed"),
    [(dict(rtf=1.2), Criteria(), ["real-time"]),
     (dict(rtf=0.6), Criteria(max_rtf=0.5), ["real-time"]),
     (dict(rss_mib=5000), Criteria(), ["memory"]),
     (dict(rss_mib=500), Criteria(rss_budget_bytes=400 * MIB), ["memory"]),
     (dict(), Criteria(min_improvement=0.6), ["WER at least 60% lower"])],  # fmt: skip
)
def test_conditional_names_what_failed(candidate: dict, criteria: Criteria, failed: list[str]) -> None:  # type: ignore[type-arg]
    d = decide(_run("qwen", [TWO_WRONG] * 2, **candidate), _run("whisper", [FOUR_WRONG] * 2), criteria)
    assert d.verdict == CONDITIONAL and [c.name for c in d.failed] == failed
    assert d.line() == f"CONDITIONAL: qwen vs whisper (failed: {', '.join(failed)})"


def test_a_failed_file_is_conditional_unless_allowed() -> None:
    d = decide(_run("qwen", [TWO_WRONG, None]), _run("whisper", [FOUR_WRONG] * 2))
    assert d.verdict == CONDITIONAL and [c.name for c in d.failed] == ["no failed file"] and d.checks[0].detail == "1 of 2 failed"
    assert decide(_run("qwen", [TWO_WRONG, None]), _run("whisper", [FOUR_WRONG] * 2), Criteria(max_failed=1)).verdict == GO


def test_no_go_when_less_accurate_than_the_baseline() -> None:
    d = decide(_run("qwen", [FOUR_WRONG] * 2), _run("whisper", [TWO_WRONG] * 2))
    assert d.verdict == NO_GO and d.checks[2].worse and "100% higher" in d.checks[2].detail


def test_no_go_when_the_candidate_gave_nothing_or_failed_everything() -> None:
    assert decide(_run("qwen", [None, None], error="engine not found"), _run("whisper", [FOUR_WRONG] * 2)).verdict == NO_GO
    d = decide(_run("qwen", [TWO_WRONG, None], rtf=2.0, rss_mib=9000), _run("whisper", [TWO_WRONG] * 2))
    assert d.verdict == NO_GO and len(d.failed) == len(d.checks)


def test_a_perfect_baseline_is_matched_only_by_a_perfect_candidate() -> None:
    assert decide(_run("qwen", [PERFECT]), _run("whisper", [PERFECT])).verdict == GO
    d = decide(_run("qwen", [TWO_WRONG]), _run("whisper", [PERFECT]))
    assert d.verdict == NO_GO and "baseline 0" in d.checks[2].detail


def test_accuracy_is_compared_on_files_both_transcribed() -> None:
    d = decide(_run("qwen", [TWO_WRONG, TWO_WRONG]), _run("whisper", [FOUR_WRONG, None]))
    assert d.verdict == GO and d.checks[2].detail.endswith("(50% lower, 1 files)")
    d = decide(_run("qwen", [TWO_WRONG]), _run("whisper", [None], error="model file missing"))
    assert d.verdict == CONDITIONAL and d.checks[2].detail == "WER not compared: the baseline did not run"
    assert decide(_run("qwen", [TWO_WRONG]), None).failed[0].name == "WER at least 20% lower"


def test_summary_arithmetic() -> None:
    run = _run("qwen", [PERFECT, TWO_WRONG, None], rtf=0.25)
    s = summarise(run)
    assert (s.files, s.failed, s.cer) == (3, 1, None)
    assert s.wer == pytest.approx(jiwer.wer([PERFECT, PERFECT], [PERFECT, TWO_WRONG]))
    assert s.rtf == pytest.approx(0.25) and s.ttft_seconds == pytest.approx(0.15)
    assert summarise(_run("whisper", [PERFECT], streams=False)).ttft_seconds is None


# -- child runs ------------------------------------------------------------------------------------


@pytest.fixture()
def items(tmp_path: Path) -> list:  # type: ignore[type-arg]
    for name in ("a", "b", "c"):
        _tone(tmp_path / f"{name}.wav")
        (tmp_path / f"{name}.txt").write_text("hello world", encoding="utf-8")
    return load_dataset(tmp_path)


def test_a_provider_runs_in_its_own_process(double_lib: Path, asr_model_file: Path, items: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[type-arg]
    import os

    for key, value in double_env(double_lib).items():
        monkeypatch.setenv(key, value)
    for key in [k for k in os.environ if k.startswith("QASR_DOUBLE_") and k not in double_env(double_lib)]:
        monkeypatch.delenv(key)
    run = run_provider("qwen3-chatllm", EngineSpec(model=str(asr_model_file)), items, tmp_path)
    assert run.error is None and run.exit == "exit 0" and run.describe["is_test_double"] is True
    assert [o.text for o in run.outcomes] == ["hello world from the test double"] * 3
    assert run.peak_rss_bytes > 10 * MIB and run.streams
    assert summarise(run).wer == pytest.approx(jiwer.wer(["hello world"] * 3, ["hello world from the test double"] * 3))


def test_a_crashing_provider_costs_its_own_files_only(double_lib: Path, asr_model_file: Path, items: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[type-arg]
    for key, value in double_env(double_lib, abort_at_call="2").items():
        monkeypatch.setenv(key, value)
    run = run_provider("qwen3-chatllm", EngineSpec(model=str(asr_model_file)), items, tmp_path)
    assert run.reason == "crashed" and "SIGABRT" in run.exit and "injected abort at call 2" in (run.error or "")
    assert run.outcomes[0].text and all(o.error and "not transcribed" in o.error for o in run.outcomes[1:])


def test_a_provider_that_cannot_start_says_why(items: list, tmp_path: Path) -> None:  # type: ignore[type-arg]
    run = run_provider("faster-whisper", EngineSpec(whisper_model=str(tmp_path / "none")), items, tmp_path)
    assert run.reason == "model file missing or corrupt" and "not found" in (run.error or "")
    assert all(o.error for o in run.outcomes) and not run.done


# -- the command on ../shared/data -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("faster_whisper")
    from whisper_tiny import build

    return build(tmp_path_factory.mktemp("whisper") / "tiny")


def _check_outputs(out: Path, data: dict, expect_double: bool) -> None:  # type: ignore[type-arg]
    from whisper_tiny import TEXT

    items = load_dataset(SHARED_DATA)
    qwen, whisper = data["providers"]
    assert [p["name"] for p in data["providers"]] == ["qwen3-chatllm", "faster-whisper"]
    assert qwen["describe"]["is_test_double"] is expect_double and qwen["label"].endswith("(test double)") is expect_double
    assert all(o["text"] == TEXT for o in whisper["outcomes"]) and len(whisper["outcomes"]) == len(items)
    english = [(i.reference, TEXT) for i in items if i.language == "en"]
    assert whisper["summary"]["wer"] == pytest.approx(corpus_rate(english, "en"))
    assert data["decision"]["verdict"] in (GO, CONDITIONAL, NO_GO) and data["decision"]["line"].startswith(data["decision"]["verdict"])
    report = (out / "report.md").read_text(encoding="utf-8")
    assert report.startswith(f"# Benchmark: {data['decision']['line']}") and "| faster-whisper | 6 | 0 |" in report
    assert ("test double, not chatllm.cpp" in report) is expect_double
    assert (out / "figures.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "results.json").read_text(encoding="utf-8")) == data


@requires_shared_data
def test_benchmark_on_shared_data_with_the_double(double_lib: Path, asr_model_file: Path, tiny_whisper: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    r = run_qasr(["benchmark", str(SHARED_DATA), "-m", str(asr_model_file), "--whisper-model", str(tiny_whisper), "-o", str(out), "--json"],
                 double_env(double_lib), timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    _check_outputs(out, data, expect_double=True)
    assert all(o["text"] == "hello world from the test double" for o in data["providers"][0]["outcomes"])
    r = run_qasr(["benchmark", str(SHARED_DATA), "-m", str(asr_model_file), "--whisper-model", str(tiny_whisper), "-o", str(tmp_path / "t"),
                  "--max-rtf", "0.000001", "--fail-unless-go"], double_env(double_lib), timeout=300)  # fmt: skip
    assert r.returncode == 1 and "real-time" in r.stdout and "provider" in r.stdout.splitlines()[0]


@pytest.mark.real_engine
@requires_shared_data
@requires_real_engine
def test_benchmark_on_shared_data_with_the_real_engine(tiny_whisper: Path, tmp_path: Path) -> None:
    lib, model = real_engine()  # type: ignore[misc]
    out = tmp_path / "report"
    r = run_qasr(["benchmark", str(SHARED_DATA), "-m", str(model), "--engine", str(lib), "--whisper-model", str(tiny_whisper), "-o", str(out), "--json"],
                 timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    _check_outputs(out, data, expect_double=False)
    qwen = data["providers"][0]
    assert qwen["exit"] == "exit 0" and qwen["summary"]["failed"] == 0 and qwen["summary"]["ttft_seconds"] > 0


def test_benchmark_usage_errors_are_one_line(tmp_path: Path) -> None:
    r = run_qasr(["benchmark", str(tmp_path / "none")])
    assert r.returncode == 2 and r.stderr.startswith("qasr: error: benchmark data not found") and len(r.stderr.splitlines()) == 1
    r = run_qasr(["benchmark", str(tmp_path), "--baseline", "whisper"])
    assert r.returncode == 2 and "unknown --baseline 'whisper'" in r.stderr
