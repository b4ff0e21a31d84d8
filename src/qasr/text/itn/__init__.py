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

#: Languages with ITN rules, after :func:`normalize_lang`.
LANGS = ("zh", "en")

_LANG_ALIASES = {
    "zh": "zh", "cmn": "zh", "chinese": "zh", "mandarin": "zh", "yue": "zh", "cantonese": "zh",
    "en": "en", "eng": "en", "english": "en",
}  # fmt: skip


def normalize_lang(lang: str | None) -> str | None:
    """``"zh"``/``"en"`` for the spellings the model and users write (Chinese, zh-TW, en_US...).

    None for anything else, which ITN then leaves untouched.
    """
    if not lang:
        return None
    key = lang.strip().lower().replace("_", "-")
    return _LANG_ALIASES.get(key) or _LANG_ALIASES.get(key.split("-", 1)[0])


def itn(text: str, lang: str = "zh", backend: str | None = None) -> str:
    """``text`` with spoken-form numbers in written form.

    ``lang``: "zh" (also zh-CN, zh-TW, Chinese, yue...) or "en"; other languages come back
    unchanged. ``backend``: "ours", "wetext" or "cn2an"; by default ours for Chinese and wetext
    for English (unchanged text when wetext is not installed). Asking for a backend whose package
    is missing raises :class:`BackendUnavailable` (an ImportError saying ``pip install ...``).
    """
    code = normalize_lang(lang)
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
    "LANGS",
    "BackendUnavailable",
    "available_backends",
    "itn",
    "normalize_lang",
]
