"""Languages, in one table: Qwen3-ASR's 30 by the names the model files list, their ISO 639 codes,
and which of them the ForcedAligner takes.

Every place that meets a language reads it here: the CLI and the server (OpenAI clients send
``language=en``), the faster-whisper provider (Whisper takes codes where Qwen3-ASR takes names),
the aligner (11 languages), ITN (rules for Chinese and English) and the OpenCC step (Chinese text
only). `canonical_name` turns any spelling a user or a model writes into the model's name.
"""

from __future__ import annotations

#: Qwen3-ASR's language names, lower-cased, and Whisper's / ISO 639-1 codes for them.
NAME_TO_CODE: dict[str, str] = {
    "chinese": "zh", "english": "en", "cantonese": "yue", "arabic": "ar", "german": "de", "french": "fr",
    "spanish": "es", "portuguese": "pt", "indonesian": "id", "italian": "it", "korean": "ko", "russian": "ru",
    "thai": "th", "vietnamese": "vi", "japanese": "ja", "turkish": "tr", "hindi": "hi", "malay": "ms",
    "dutch": "nl", "swedish": "sv", "danish": "da", "finnish": "fi", "polish": "pl", "czech": "cs",
    "filipino": "tl", "persian": "fa", "greek": "el", "hungarian": "hu", "macedonian": "mk", "romanian": "ro",
}  # fmt: skip

#: Codes to the names the model files spell (``fil`` is ISO 639-2 for Filipino, which Whisper calls ``tl``).
CODE_TO_NAME: dict[str, str] = {**{code: name.capitalize() for name, code in NAME_TO_CODE.items()}, "fil": "Filipino"}

#: The ForcedAligner's 11 languages (its model card), by code.
ALIGNER_CODES: tuple[str, ...] = ("zh", "en", "yue", "fr", "de", "it", "ja", "ko", "pt", "ru", "es")

#: The aligner's languages: ISO code -> the name the model file lists.
ALIGNER_LANGUAGES: dict[str, str] = {code: CODE_TO_NAME[code] for code in ALIGNER_CODES}

#: Other spellings people and tools write for a language, to its code.
ALIASES: dict[str, str] = {"cmn": "zh", "mandarin": "zh", "zho": "zh", "chi": "zh", "eng": "en"}

#: Languages written in Chinese characters, whose text OpenCC converts (codes).
CHINESE_CODES = frozenset({"zh", "yue"})


def language_code(language: str | None) -> str | None:
    """The ISO code of a name (``English``), a code (``en``), a regional tag (``zh-TW``, ``en_US``) or
    an alias (``Mandarin``); None for None and for anything unknown."""
    if not language:
        return None
    key = language.strip().lower().replace("_", "-")
    for candidate in (key, key.split("-", 1)[0]):
        if candidate in NAME_TO_CODE:
            return NAME_TO_CODE[candidate]
        if candidate in CODE_TO_NAME:
            return "tl" if candidate == "fil" else candidate
        if candidate in ALIASES:
            return ALIASES[candidate]
    return None


def canonical_name(language: str | None) -> str | None:
    """The model's name (``English``) for any spelling `language_code` knows; None when unknown."""
    code = language_code(language)
    return CODE_TO_NAME[code] if code else None


def is_chinese(language: str | None) -> bool:
    """True for Chinese and Cantonese in any spelling: the text OpenCC's conversions are for."""
    return language_code(language) in CHINESE_CODES


def aligner_language(language: str) -> str:
    """The model's name for one of the aligner's 11 languages, given a code or a name; else UsageError."""
    from qasr.errors import UsageError

    code = language_code(language)
    if code not in ALIGNER_LANGUAGES:
        choices = ", ".join(f"{c} ({name})" for c, name in ALIGNER_LANGUAGES.items())
        raise UsageError(f"the forced aligner does not support {language!r}; it supports: {choices}")
    return ALIGNER_LANGUAGES[code]
