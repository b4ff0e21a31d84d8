"""Inverse text normalization (ITN): spoken-form numbers in ASR output to written form.

``itn("电话一三八零零一三八零零零")`` gives ``"电话13800138000"``. Chinese goes through qasr's
own rules (:mod:`qasr.text.itn.zh`, both scripts; see ``docs/itn.md`` for every rule), English
through WeTextProcessing's runtime when the optional ``wetext`` package is installed, and is
returned unchanged otherwise. wetext and cn2an can also be chosen for Chinese, for comparison.

Importing this module imports nothing but the standard library; the rule tables are compiled on
first use, optional packages imported only when their backend is asked for.
"""

from __future__ import annotations

from qasr.text.itn.backends import BACKEND_NAMES, BackendUnavailable, available_backends, get_backend
from qasr.text.itn.styles import DATE_STYLES, TIME_STYLES

#: Languages with ITN rules, after :func:`normalize_lang`.
LANGS = ("zh", "en")


def normalize_lang(lang: str | None) -> str | None:
    """``"zh"``/``"en"`` for the spellings the model and users write (Chinese, zh-TW, en_US...).

    Chinese and Cantonese share the Chinese rules. None for anything else, which ITN then leaves
    untouched. The spellings are `qasr.text.languages`' one table.
    """
    from qasr.text.languages import is_chinese, language_code

    if is_chinese(lang):
        return "zh"
    return "en" if language_code(lang) == "en" else None


def itn(
    text: str, lang: str = "zh", backend: str | None = None, *, date: str = "zh", time: str = "padded"
) -> str:
    """``text`` with spoken-form numbers in written form.

    ``lang``: "zh" (also zh-CN, zh-TW, Chinese, yue...) or "en"; other languages come back
    unchanged. ``backend``: "ours", "wetext" or "cn2an"; by default ours for Chinese and wetext
    for English (unchanged text when wetext is not installed). Asking for a backend whose package
    is missing raises :class:`BackendUnavailable` (an ImportError saying ``pip install ...``).

    ``date`` ("zh": 2008年8月8日, or "iso": 2008-08-08 for full dates) and ``time`` ("padded":
    08:05, or "unpadded": 8:05) choose written forms of our Chinese rules (docs/itn.md says why
    the defaults are what they are). They are ignored for other languages, so one setting can
    serve mixed-language output; with another backend for Chinese they raise ValueError.
    """
    code = normalize_lang(lang)
    if date != "zh" or time != "padded":
        from qasr.text.itn.styles import check_styles

        check_styles(date, time)
        if code == "zh" and backend in (None, "ours"):
            # the backend protocol has no styles; they belong to our rules alone
            from qasr.text.itn.zh import itn_zh

            return itn_zh(text, date=date, time=time)
        if code == "zh":
            raise ValueError(f"date/time styles apply to the 'ours' ITN backend, not {backend!r}")
    if backend is None:
        if code == "zh":
            backend = "ours"
        elif code == "en":
            try:
                engine = get_backend("wetext")
            except BackendUnavailable:
                return text
            return engine.normalize(text, "en")
        else:
            return text
    engine = get_backend(backend)
    if code is None or not engine.supports(code):
        return text
    return engine.normalize(text, code)


__all__ = [
    "BACKEND_NAMES",
    "DATE_STYLES",
    "LANGS",
    "TIME_STYLES",
    "BackendUnavailable",
    "available_backends",
    "itn",
    "normalize_lang",
]
