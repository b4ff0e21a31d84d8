"""The WeTextProcessing-suite benchmark's reader and classifier, on suites written here.

Every sentence below is ours; the benchmark reads the real suite from a checkout at run time.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import wetext_suite as ws  # noqa: E402
from wetext_suite import CONVENTION, OURS_WRONG, THEIRS_WRONG, Case, classify  # noqa: E402


def _write_suite(root: Path) -> Path:
    data = root / ws.DATA_SUBDIR
    data.mkdir(parents=True)
    (data / "date.txt").write_text("二零二四年五月一日 => 2024/05/01\n三月二号 => 03/02\n", encoding="utf-8")
    (data / "normalizer.txt").write_text("嗯嗯 => \nnot a case line\n", encoding="utf-8")
    (data / "normalizer_disable_standalone_number.txt").write_text("三 => 三\n", encoding="utf-8")
    return data


def test_categories_and_configurations_come_from_file_names(tmp_path: Path) -> None:
    data = _write_suite(tmp_path)
    for where in (tmp_path, data):  # the checkout or its data directory
        cases, variants = ws.load_suite(where)
        assert sorted({c.category for c in cases}) == ["date", "normalizer"]
        assert [c.written for c in cases if c.category == "normalizer"] == [""]
        assert list(variants) == ["normalizer_disable_standalone_number"]
        assert variants["normalizer_disable_standalone_number"][0].category == "normalizer"
        assert cases[0].where == "date.txt:1"


def test_missing_suite_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="WeTextProcessing"):
        ws.load_suite(tmp_path)


def _verdict(spoken: str, theirs: str, ours: str) -> ws.Verdict:
    return classify(Case("x", spoken, theirs, "x.txt:1"), ours)


@pytest.mark.parametrize(
    ("spoken", "theirs", "ours", "kind", "rules"),
    [
        ("二零二四年五月一日", "2024/05/01", "2024年5月1日", CONVENTION, {"date-format"}),
        ("一九九九年十二月三十一号", "1999/12/31", "1999年12月31号", CONVENTION, {"date-format"}),
        ("二零二四年五月一日", "2024/05/01", "2024-05-01", CONVENTION, {"date-format"}),  # date="iso"
        ("七点零五分出门", "7:05出门", "07:05出门", CONVENTION, {"clock-format"}),
        ("二十三四岁", "23-4岁", "23~24岁", CONVENTION, {"range-format"}),
        ("三五十元", "¥30~50", "30~50元", CONVENTION, {"money-symbol"}),
        ("九十公斤", "90kg", "90公斤", CONVENTION, {"unit-words"}),
        ("三万", "30000", "3万", CONVENTION, {"big-units"}),
        ("下午四点二十", "4:20p.m.", "下午04:20", THEIRS_WRONG, {"am-pm", "clock-format"}),
        ("八十八五箱", "885箱", "88五箱", THEIRS_WRONG, {"merged-numbers"}),
        ("六点五分起飞", "6.5分起飞", "06:05起飞", THEIRS_WRONG, {"clock-as-score"}),
        # a difference no rule explains is ours
        ("一三五洞", "1350", "一三五洞", OURS_WRONG, set()),
        # a rule applied to both sides cannot hide a wrong number behind a convention
        ("六千克", "6kg", "7千克", OURS_WRONG, set()),
        ("二零二四年五月一日", "2024/05/01", "2024年5月2日", OURS_WRONG, set()),
        ("下午四点二十", "4:20p.m.", "下午04:21", OURS_WRONG, set()),
    ],
)
def test_classification(spoken: str, theirs: str, ours: str, kind: str, rules: set[str]) -> None:
    v = _verdict(spoken, theirs, ours)
    assert v.kind == kind
    assert set(v.rules) == rules


def test_agreement_needs_no_rule() -> None:
    v = _verdict("三点一四", "3.14", "3.14")
    assert v.kind == ws.AGREE and v.rules == ()


def test_ours_wrong_shows_what_still_differs() -> None:
    v = _verdict("一三五洞", "1350", "一三五洞")
    assert v.residue == ("一三五洞", "1350")


def test_every_rule_is_documented() -> None:
    doc = (ROOT / "docs" / "itn.md").read_text(encoding="utf-8")
    section = doc.split("## Conventions and the WeTextProcessing suite", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\* `([a-z-]+)`:", section, flags=re.M))
    assert documented == {r.name for r in ws.RULES}
    for rule in ws.RULES:
        assert rule.kind in (CONVENTION, THEIRS_WRONG) and rule.why


def test_report_prints_each_category_and_class(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cases, variants = ws.load_suite(_write_suite(tmp_path))
    fake = {"二零二四年五月一日": "2024年5月1日", "三月二号": "3月3号", "嗯嗯": ""}
    results = ws.compare(cases, lambda s: fake.get(s, s))
    ws.print_table(results)
    ws.print_differences(results)
    ws.print_variants(variants, lambda s: s)
    out = capsys.readouterr().out
    assert re.search(r"^date\s+2\s+0\s+0\.0%\s+1\s+0\s+1$", out, flags=re.M)
    assert re.search(r"^normalizer\s+1\s+1\s+100\.0%", out, flags=re.M)
    assert "ours wrong (1):" in out and "[date] 三月二号" in out
    assert "normalizer_disable_standalone_number" in out and "1/1" in out
