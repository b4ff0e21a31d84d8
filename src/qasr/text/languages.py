"""Qwen3-ASR's 30 languages by the names the model files list, and their ISO 639 codes.

One table for every place that meets a code: the server (OpenAI clients send ``language=en``) and
the faster-whisper provider (Whisper takes codes where Qwen3-ASR takes names).
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
