"""qasr.lab.verdict validated on synthetic series (GUIDE.md §4): every case is seeded."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from qasr.lab.attribution import Attribution, LeakKind, attribute
from qasr.lab.scenarios import default_threshold
from qasr.lab.stats import t_quantile
from qasr.lab.verdict import SlopeVerdict, Verdict, decide_with_extension, slope_verdict

KiB = 1024
MiB = 1024**2
BASE = 2_000_000_000.0  # a plausible RSS level; the method must not care about the offset


def _i(n: int) -> np.ndarray:
    return np.arange(n, dtype=float)


def linear(seed: int, slope: float, sd: float, n: int = 100) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return BASE + slope * _i(n) + rng.normal(0.0, sd, n)


def warmup(
    seed: int, amplitude: float, tau: float, sd: float, n: int = 100, slope: float = 0.0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    i = _i(n)
    return BASE + amplitude * (1.0 - np.exp(-i / tau)) + slope * i + rng.normal(0.0, sd, n)


def spiky(seed: int, n: int = 100) -> np.ndarray:
    """Zero slope, heavy-tailed noise (t with 2 df) and occasional +50 MiB one-iteration spikes."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_t(2, n) * 300 * KiB
    spikes = (rng.random(n) < 0.05) * 50 * MiB
    return BASE + noise + spikes


# ----------------------------------------------------------------------------------------------
# t quantile


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        (0.95, 1, 6.313751515),
        (0.95, 2, 2.919985580),
        (0.95, 3, 2.353363435),
        (0.95, 5, 2.015048373),
        (0.95, 10, 1.812461123),
        (0.95, 30, 1.697260887),
        (0.95, 100, 1.660234326),
        (0.975, 4, 2.776445105),
        (0.99, 7, 2.997951566),
        (0.05, 10, -1.812461123),
    ],
)
def test_t_quantile_matches_tables(p: float, df: float, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-8)


def test_t_quantile_fractional_df_is_between_neighbours_and_tends_to_normal() -> None:
    assert t_quantile(0.95, 10) > t_quantile(0.95, 10.5) > t_quantile(0.95, 11)
    assert t_quantile(0.95, 1e8) == pytest.approx(1.644853627, abs=1e-8)
    with pytest.raises(ValueError):
        t_quantile(1.0, 5)
    with pytest.raises(ValueError):
        t_quantile(0.95, 0)


# ----------------------------------------------------------------------------------------------
# Slope verdicts


def test_one_mib_per_iteration_leak_is_a_leak_and_the_slope_is_right() -> None:
    result = slope_verdict(linear(1, 1 * MiB, 200 * KiB), threshold=256 * KiB)
    assert result.verdict is Verdict.LEAK
    assert result.slope_bytes_per_iter == pytest.approx(1 * MiB, rel=0.05)
    assert result.ci_low < result.slope_bytes_per_iter < result.ci_high
    assert result.ci_low > 256 * KiB
    assert result.n_total == 100
    assert result.n_used == 100 - 20 - 4  # warm-up cut of 0.2 N, then a 'valid' width-5 median
    assert result.suggest_n is None
    assert result.warnings == ()


@pytest.mark.parametrize("seed", range(10))
def test_one_mib_leak_estimate_is_within_five_percent_over_seeds(seed: int) -> None:
    result = slope_verdict(linear(seed, 1 * MiB, 200 * KiB), threshold=256 * KiB)
    assert result.verdict is Verdict.LEAK
    assert abs(result.slope_bytes_per_iter - MiB) < 0.05 * MiB


def test_restart_scale_leak_above_the_rss_threshold_is_a_leak() -> None:
    t_rss = default_threshold("restart", None, "rss_anon")
    assert t_rss == 64 * KiB
    result = slope_verdict(linear(2, 128 * KiB, 16 * KiB), threshold=t_rss)
    assert result.verdict is Verdict.LEAK
    assert result.slope_bytes_per_iter == pytest.approx(128 * KiB, rel=0.05)


def test_64_kib_leak_is_a_leak_against_the_live_heap_threshold() -> None:
    t_heap = default_threshold("restart", None, "heap_live")
    assert t_heap == 16 * KiB
    result = slope_verdict(linear(3, 64 * KiB, 16 * KiB), threshold=t_heap)
    assert result.verdict is Verdict.LEAK
    assert result.slope_bytes_per_iter == pytest.approx(64 * KiB, rel=0.05)


def test_slope_equal_to_the_threshold_is_never_a_leak() -> None:
    """LEAK needs the lower bound above T, so a slope of exactly T can at most be inconclusive."""
    result = slope_verdict(linear(4, 64 * KiB, 16 * KiB), threshold=64 * KiB)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.ci_low < 64 * KiB < result.ci_high
    assert result.suggest_n == 200


@pytest.mark.parametrize("seed", range(5))
def test_flat_restart_series_is_no_leak(seed: int) -> None:
    result = slope_verdict(linear(seed, 0.0, 16 * KiB), threshold=64 * KiB)
    assert result.verdict is Verdict.NO_LEAK
    assert result.ci_high < 64 * KiB
    assert abs(result.slope_bytes_per_iter) < 4 * KiB


@pytest.mark.parametrize("tau", [5.0, 7.0, 10.0])
def test_300_mib_warm_up_then_plateau_is_no_leak(tau: float) -> None:
    series = warmup(10, 300 * MiB, tau, sd=1 * MiB)
    result = slope_verdict(series, threshold=1 * MiB)
    assert result.verdict is Verdict.NO_LEAK, result.reason
    assert abs(result.slope_bytes_per_iter) < 100 * KiB
    if tau >= 7:
        # A straight line through this series would report a large positive slope; the warm-up
        # term absorbs the remaining settling (tau < N/5, so it is no reason to wait). At tau = 5
        # only ~4 MiB is left after the cut and a line may fit as well, so it is not required.
        assert result.tau is not None and result.tau <= 20
        assert result.warmup_amplitude is not None and result.warmup_amplitude > 0


def test_leak_on_top_of_a_warm_up_is_still_found() -> None:
    series = warmup(11, 300 * MiB, 7.0, sd=1 * MiB, slope=1 * MiB)
    result = slope_verdict(series, threshold=256 * KiB)
    assert result.verdict is Verdict.LEAK
    assert result.slope_bytes_per_iter == pytest.approx(MiB, rel=0.05)


def test_series_still_warming_up_is_inconclusive_with_a_suggested_n() -> None:
    series = warmup(12, 300 * MiB, tau=50.0, sd=1 * MiB)
    result = slope_verdict(series, threshold=1 * MiB)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.tau is not None and result.tau > 100 / 5
    assert result.suggest_n == 200
    assert "warming up" in result.reason


@pytest.mark.parametrize(("amplitude", "tau"), [(2 * MiB, 60.0), (4 * MiB, 40.0), (-2 * MiB, 60.0)])
def test_a_small_slow_kink_does_not_hide_a_clear_leak(amplitude: float, tau: float) -> None:
    # Low-noise RSS (a restart child's) with a small slow drift on top of a 1 MiB/iteration leak:
    # the kink is significant and slow (tau > N/5), but far too small to explain the slope.
    for seed in range(10):
        series = warmup(seed, amplitude, tau, sd=20 * KiB, slope=1 * MiB)
        result = slope_verdict(series, threshold=256 * KiB)
        assert result.tau is not None and result.tau > 100 / 5, result.reason
        assert result.verdict is Verdict.LEAK, result.reason
        assert "while still warming up" in result.reason


@pytest.mark.parametrize(("amplitude", "tau"), [(2 * MiB, 60.0), (-2 * MiB, 60.0)])
def test_a_small_slow_kink_on_a_flat_series_is_no_leak(amplitude: float, tau: float) -> None:
    for seed in range(10):
        series = warmup(seed, amplitude, tau, sd=20 * KiB)
        result = slope_verdict(series, threshold=256 * KiB)
        assert result.tau is not None and result.tau > 100 / 5, result.reason
        assert result.verdict is Verdict.NO_LEAK, result.reason


def test_a_slow_warm_up_as_large_as_the_slope_stays_inconclusive() -> None:
    # 300 MiB settling with tau 50 could be read as a 3 MiB/iteration rise or as a plateau to
    # come: neither bound clears the threshold by the warm-up's steepest rate, so no verdict.
    for seed in range(10):
        result = slope_verdict(warmup(seed, 300 * MiB, 50.0, sd=20 * KiB), threshold=1 * MiB)
        assert result.verdict is Verdict.INCONCLUSIVE and "warming up" in result.reason


@pytest.mark.parametrize("threshold", [1 * MiB, 64 * KiB])
def test_spikes_and_heavy_tails_never_make_a_false_leak(threshold: int) -> None:
    verdicts = [slope_verdict(spiky(seed), threshold=threshold).verdict for seed in range(20)]
    assert Verdict.LEAK not in verdicts
    # The method must still be decisive on most of them, not hide behind INCONCLUSIVE.
    assert verdicts.count(Verdict.NO_LEAK) >= 15


def test_the_smoothing_is_what_defeats_the_spikes() -> None:
    """Check of the test itself: spikes in the fitted window move a plain OLS slope a lot."""
    series = spiky(0)
    i = _i(100)[20:]
    ols = np.polyfit(i, series[20:], 1)[0]
    robust = slope_verdict(series, threshold=1 * MiB).slope_bytes_per_iter
    assert abs(robust) < abs(ols)


def test_confidence_bounds_cover_the_truth_about_95_percent_of_the_time() -> None:
    """The autocorrelation correction matters: plain OLS bounds miss ~20% of the time here."""
    misses = 0
    trials = 200
    for seed in range(trials):
        result = slope_verdict(linear(100 + seed, 100 * KiB, 200 * KiB), threshold=0)
        misses += result.ci_high < 100 * KiB
        misses += result.ci_low > 100 * KiB
    # Two one-sided 5% bounds: at most ~10% expected, plus sampling slack.
    assert misses / (2 * trials) <= 0.075


def test_small_n_works_but_warns() -> None:
    result = slope_verdict(linear(5, 1 * MiB, 200 * KiB, n=40), threshold=256 * KiB)
    assert result.verdict is Verdict.LEAK
    assert result.n_total == 40
    assert any("N >= 100" in w for w in result.warnings)


def test_too_short_to_fit_is_inconclusive() -> None:
    result = slope_verdict([1.0, 2.0, 3.0], threshold=0.5)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert math.isnan(result.slope_bytes_per_iter)
    assert result.suggest_n == 6


def test_missing_readings_are_skipped_not_zeroed() -> None:
    series: list[float | None] = list(linear(6, 1 * MiB, 200 * KiB))
    for k in (30, 31, 55, 80):
        series[k] = None
    series[60] = float("nan")
    result = slope_verdict(series, threshold=256 * KiB)
    assert result.verdict is Verdict.LEAK
    assert result.slope_bytes_per_iter == pytest.approx(MiB, rel=0.05)
    assert any("5 missing" in w for w in result.warnings)


def test_noiseless_constant_and_noiseless_line() -> None:
    flat = slope_verdict([BASE] * 100, threshold=1.0)
    assert flat.verdict is Verdict.NO_LEAK
    assert flat.slope_bytes_per_iter == pytest.approx(0.0, abs=1e-6)
    line = slope_verdict(list(BASE + 4096 * _i(100)), threshold=1024)
    assert line.verdict is Verdict.LEAK
    assert line.slope_bytes_per_iter == pytest.approx(4096, rel=1e-6)


def test_to_dict_is_json_ready() -> None:
    result = slope_verdict(linear(7, 1 * MiB, 200 * KiB), threshold=256 * KiB)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["verdict"] == "LEAK"
    assert set(data) >= {
        "slope_bytes_per_iter", "ci_low", "ci_high", "threshold", "n_total", "n_used", "tau",
        "warmup_amplitude", "reason", "suggest_n",
    }


# ----------------------------------------------------------------------------------------------
# decide_with_extension


def test_extension_doubles_n_at_most_twice() -> None:
    calls: list[int] = []

    def run(n: int) -> np.ndarray:
        calls.append(n)
        return linear(8, 64 * KiB, 16 * KiB, n=n)  # slope == T: inconclusive however long

    outcome = decide_with_extension(run, 100, threshold=64 * KiB)
    assert calls == [100, 200, 400]
    assert outcome.ns == (100, 200, 400)
    assert outcome.final is outcome.attempts[-1]
    assert outcome.final.verdict is Verdict.INCONCLUSIVE


def test_extension_stops_as_soon_as_the_answer_is_clear() -> None:
    calls: list[int] = []

    def run(n: int) -> np.ndarray:
        calls.append(n)
        # Warm-up with tau = 30: still settling at N = 100 (tau > 20), settled at N = 200 (< 40).
        return warmup(9, 300 * MiB, tau=30.0, sd=1 * MiB, n=n)

    outcome = decide_with_extension(run, 100, threshold=1 * MiB)
    assert calls[0] == 100
    assert outcome.attempts[0].verdict is Verdict.INCONCLUSIVE
    assert outcome.final.verdict is Verdict.NO_LEAK
    assert len(calls) in (2, 3)
    assert json.loads(json.dumps(outcome.to_dict()))["final"]["verdict"] == "NO_LEAK"


def test_extension_with_zero_doublings_runs_once() -> None:
    calls: list[int] = []

    def run(n: int) -> list[float]:
        calls.append(n)
        return [0.0] * n

    outcome = decide_with_extension(run, 100, 1.0, max_doublings=0)
    assert calls == [100]
    assert len(outcome.attempts) == 1


# ----------------------------------------------------------------------------------------------
# Thresholds


def test_default_thresholds() -> None:
    assert default_threshold("reload", None, "rss_anon") == MiB
    assert default_threshold("reload", 100_000_000, "rss_anon") == MiB  # 0.5% = 500 kB < 1 MiB
    assert default_threshold("switch", 2_505_570_400, "rss") == 12_527_852
    assert default_threshold("aligner-reload", 984_439_424, "heap_live") == 4_922_198
    assert default_threshold("noclose", 1_005_656_864, "pss") == 5_028_285
    assert default_threshold("restart", 1_005_656_864, "rss_anon") == 64 * KiB
    assert default_threshold("aligner-restart", None, "heap_live") == 16 * KiB
    with pytest.raises(ValueError, match="unknown scenario"):
        default_threshold("bogus", None, "rss")
    with pytest.raises(ValueError, match="unknown metric"):
        default_threshold("restart", None, "bogus")


# ----------------------------------------------------------------------------------------------
# Attribution


def _flat(seed: int, level: float, sd: float = 8 * KiB) -> np.ndarray:
    return linear(seed, 0.0, sd) - BASE + level


def _rising(seed: int, level: float, slope: float, sd: float = 8 * KiB) -> np.ndarray:
    return linear(seed, slope, sd) - BASE + level


T_BY_METRIC = {
    "rss_anon": 64 * KiB,
    "rss_file": 64 * KiB,
    "vm_data": 64 * KiB,
    "heap_live": 16 * KiB,
    "heap_free": 16 * KiB,
}


def test_attribution_live_heap_leak() -> None:
    series = {
        "rss_anon": _rising(1, 500 * MiB, 256 * KiB),
        "heap_live": _rising(2, 300 * MiB, 256 * KiB),
        "heap_free": _flat(3, 5 * MiB),
        "rss_file": _flat(4, 50 * MiB),
        "vm_data": _rising(5, 900 * MiB, 256 * KiB),
    }
    result = attribute(series, T_BY_METRIC)
    assert result.kind is LeakKind.LIVE_HEAP
    assert result.kind.value == "live-heap leak"
    assert "256 KiB/iter" in result.explanation
    assert result.verdicts["heap_live"].verdict is Verdict.LEAK


def test_attribution_allocator_retention_confirmed_by_trim() -> None:
    series = {
        "rss_anon": _rising(1, 500 * MiB, 512 * KiB),
        "heap_live": _flat(2, 300 * MiB),
        "heap_free": _rising(3, 5 * MiB, 512 * KiB),
        "rss_file": _flat(4, 50 * MiB),
    }
    before = {"rss_anon": 550 * MiB}
    after = {"rss_anon": 502 * MiB}  # trim gave back 48 MiB of the ~50 MiB grown in 100 iterations
    result = attribute(series, T_BY_METRIC, trim_before=before, trim_after=after)
    assert result.kind is LeakKind.RETENTION
    assert result.kind.value == "allocator retention"
    assert result.trim_released == 48 * MiB
    assert result.trim_confirmed is True
    assert "48 MiB" in result.explanation and "512 KiB/iter" in result.explanation


def test_attribution_retention_not_confirmed_when_trim_gives_nothing_back() -> None:
    series = {
        "rss_anon": _rising(1, 500 * MiB, 512 * KiB),
        "heap_live": _flat(2, 300 * MiB),
        "heap_free": _rising(3, 5 * MiB, 512 * KiB),
    }
    result = attribute(
        series, T_BY_METRIC, trim_before={"rss_anon": 550 * MiB}, trim_after={"rss_anon": 549 * MiB}
    )
    assert result.kind is LeakKind.RETENTION
    assert result.trim_confirmed is False
    assert "only 1 MiB" in result.explanation


def test_attribution_leaked_mappings() -> None:
    series = {
        "rss_anon": _flat(1, 500 * MiB),
        "heap_live": _flat(2, 300 * MiB),
        "heap_free": _flat(3, 5 * MiB),
        "rss_file": _rising(4, 50 * MiB, 1 * MiB),
    }
    result = attribute(series, T_BY_METRIC)
    assert result.kind is LeakKind.MAPPINGS
    assert result.kind.value == "leaked mappings"
    assert "rss_file" in result.explanation


def test_a_few_free_bytes_do_not_make_mapped_growth_retention() -> None:
    """Seen on the lab: an mmap leak of 1 MiB/iter while glibc's free bytes crept up 11 B/iter
    (significantly above zero) was called allocator retention, hence NO_LEAK. Free bytes must grow
    by about as much as RSS to explain it."""
    series = {
        "rss_anon": _rising(1, 500 * MiB, MiB),
        "heap_live": _flat(2, 300 * MiB),
        "heap_free": _rising(3, 5 * MiB, 11, sd=4),
        "vm_data": _rising(4, 900 * MiB, MiB),
    }
    result = attribute(series, T_BY_METRIC, trim_before={"rss_anon": 600 * MiB}, trim_after={"rss_anon": 599 * MiB})
    assert result.verdicts["heap_free"].ci_low > 0  # the free bytes do grow, a little
    assert result.kind is LeakKind.MAPPINGS
    assert "vm_data" in result.explanation


def test_attribution_none_when_everything_is_flat() -> None:
    series = {name: _flat(k, 100 * MiB) for k, name in enumerate(T_BY_METRIC)}
    result = attribute(series, T_BY_METRIC)
    assert result.kind is LeakKind.NONE
    assert result.trim_confirmed is None


def test_attribution_without_heap_statistics_does_not_guess() -> None:
    result = attribute({"rss_anon": _rising(1, 500 * MiB, 512 * KiB)}, 64 * KiB)
    assert result.kind is LeakKind.UNATTRIBUTED
    assert "not glibc" in result.explanation


def test_attribution_uses_given_verdicts() -> None:
    given = slope_verdict(_rising(2, 300 * MiB, 256 * KiB), 16 * KiB)
    result = attribute({}, 64 * KiB, verdicts={"heap_live": given})
    assert result.kind is LeakKind.LIVE_HEAP
    assert isinstance(result, Attribution)
    assert isinstance(result.verdicts["heap_live"], SlopeVerdict)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["kind"] == "live-heap leak"
