"""The text post-processing chain after parsing: ITN first, then OpenCC (docs/itn.md says why).

ITN rules are written for the script the model produced (mostly Simplified), and OpenCC's phrase
conversion should see the final digits and units, so the order is fixed: ITN, then conversion.
"""

from __future__ import annotations


def postprocess(text: str, *, itn: bool = False, opencc: str | None = None, language: str | None = None) -> str:
    """Apply inverse text normalisation and/or an OpenCC conversion (``None``/``"none"``: no conversion)."""
    if itn and text:
        from qasr.text.itn import itn as run_itn

        text = run_itn(text, lang="en" if (language or "").lower().startswith("en") else "zh")
    if opencc and opencc != "none" and text:
        from qasr.text.convert import convert

        text = convert(text, opencc)
    return text
