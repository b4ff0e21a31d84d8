"""OpenCC conversion of ASR output (qasr.text.convert) and the ITN -> OpenCC order."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("opencc", exc_type=ImportError)

from qasr.text.convert import OPENCC_TARGETS, convert  # noqa: E402
from qasr.text.post import itn_then_convert  # noqa: E402


def test_targets_listed_default_first() -> None:
    assert OPENCC_TARGETS[0] == "s2twp"
    assert set(OPENCC_TARGETS) == {"s2twp", "s2t", "s2hk", "t2s", "none"}


def test_s2twp_uses_taiwan_phrases() -> None:
    assert convert("我们用软件打印文件") == "我們用軟體列印檔案"
    assert convert("出租车和自行车", "s2twp") == "計程車和腳踏車"


def test_s2t_is_character_level() -> None:
    assert convert("软件和鼠标", "s2t") == "軟件和鼠標"


def test_s2hk() -> None:
    assert convert("这里的内存", "s2hk") == "這裏的內存"


def test_t2s() -> None:
    assert convert("兩萬億點", "t2s") == "两万亿点"


def test_none_returns_text_unchanged() -> None:
    text = "我们用软件 iPhone 4s"
    assert convert(text, "none") is text


def test_unknown_target_lists_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        convert("你好", "s2xx")
    for name in OPENCC_TARGETS:
        assert name in str(info.value)


@pytest.mark.parametrize("target", [t for t in OPENCC_TARGETS if t != "none"])
def test_latin_digits_and_punctuation_untouched(target: str) -> None:
    latin = "Hello, World! iPhone 4s, GPT-4o, x=3.14 (ok) 13800138000 12:30 50% ~ A4"
    assert convert(latin, target) == latin
    mixed = convert("我用iPhone 15拍了12张照片, OK?", target)
    assert "iPhone 15" in mixed and "12" in mixed and "OK?" in mixed


def test_empty_text() -> None:
    assert convert("") == ""


def test_converters_are_cached() -> None:
    from qasr.text import convert as mod

    mod._converter.cache_clear()
    convert("软件", "s2t")
    convert("鼠标", "s2t")
    info = mod._converter.cache_info()
    assert info.misses == 1 and info.hits == 1


def test_pipeline_itn_then_convert() -> None:
    # ITN first: s2twp would turn the 幺 of a phone number into 么 before ITN saw it
    assert itn_then_convert("可以拨打幺二三零六来咨询") == "可以撥打12306來諮詢"
    assert itn_then_convert("下午三点四十五分开会，大概十几万人") == "下午03:45開會，大概十幾萬人"
    assert itn_then_convert("三百亿美元", "none") == "300亿美元"


def test_pipeline_rejects_unknown_target_before_work() -> None:
    with pytest.raises(ValueError):
        itn_then_convert("一二三", "klingon")


def test_itn_reads_text_that_was_converted_first() -> None:
    from qasr.text.itn import itn

    assert itn(convert("请拨打幺幺零，下午三点四十五分", "s2twp")) == "請撥打110，下午03:45"


def test_import_is_light() -> None:
    heavy = ("opencc", "wetext", "cn2an", "qasr.text.itn.zh")
    code = (
        "import sys; import qasr.text.convert, qasr.text.itn; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
