"""ITN backends behind one interface: ours (always there), wetext and cn2an (when installed).

The optional packages are imported only when a backend is first used, and each instance is built
once and cached: wetext loads its FSTs from disk (tens of milliseconds), so building it per
sentence would dominate. ``import qasr.text.itn.backends`` itself imports nothing beyond the stdlib.
"""

from __future__ import annotations

import importlib.util
import warnings
from functools import lru_cache
from typing import Protocol, runtime_checkable

#: Every backend name, ours first; which are usable here is :func:`available_backends`.
BACKEND_NAMES = ("ours", "wetext", "cn2an")
_PIP = {"wetext": "wetext", "cn2an": "cn2an"}


class BackendUnavailable(ImportError):
    """An optional ITN backend was asked for but its package is not installed."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"the {name!r} ITN backend needs the {_PIP[name]} package: pip install {_PIP[name]}"
            f" (or pip install 'qasr[itn]')",
            name=_PIP[name],
        )
        self.backend = name


@runtime_checkable
class ItnBackend(Protocol):
    """Something that turns spoken-form numbers into written form for one language."""

    name: str

    def supports(self, lang: str) -> bool:
        """True if this backend has rules for ``lang`` ("zh" or "en")."""
        ...

    def normalize(self, text: str, lang: str) -> str:
        """``text`` with numbers in written form; text in an unsupported language unchanged."""
        ...


class OursBackend:
    """qasr's own rules (:mod:`qasr.text.itn.zh`): Chinese only, both scripts, pure Python."""

    name = "ours"

    def __init__(self) -> None:
        from qasr.text.itn.zh import itn_zh

        self._zh = itn_zh

    def supports(self, lang: str) -> bool:
        return lang == "zh"

    def normalize(self, text: str, lang: str) -> str:
        return self._zh(text) if lang == "zh" else text


class WetextBackend:
    """WeTextProcessing's runtime (the ``wetext`` package): Chinese and English ITN."""

    name = "wetext"

    def __init__(self) -> None:
        try:
            from wetext import Normalizer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise BackendUnavailable("wetext") from exc
        self._normalizers = {
            lang: Normalizer(lang=lang, operator="itn") for lang in ("zh", "en")
        }

    def supports(self, lang: str) -> bool:
        return lang in self._normalizers

    def normalize(self, text: str, lang: str) -> str:
        norm = self._normalizers.get(lang)
        if norm is None or not text.strip():
            return text
        return norm.normalize(text)


class Cn2anBackend:
    """cn2an's ``transform(text, "cn2an")``: Chinese only; kept for comparison."""

    name = "cn2an"

    def __init__(self) -> None:
        try:
            import cn2an
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise BackendUnavailable("cn2an") from exc
        # cn2an warns (UserWarning) on every stretch it cannot parse; that is its normal
        # behaviour on idioms, not something to show the user
        warnings.filterwarnings("ignore", category=UserWarning, module=r"cn2an(\..*)?$")
        self._transform = cn2an.transform

    def supports(self, lang: str) -> bool:
        return lang == "zh"

    def normalize(self, text: str, lang: str) -> str:
        if lang != "zh" or not text:
            return text
        try:
            return self._transform(text, "cn2an")
        except Exception:  # cn2an raises on some inputs it cannot parse; leave them as they are
            return text


_CLASSES: dict[str, type] = {"ours": OursBackend, "wetext": WetextBackend, "cn2an": Cn2anBackend}


def is_installed(name: str) -> bool:
    """True if backend ``name`` can be used here (without importing its package)."""
    if name == "ours":
        return True
    if name not in _PIP:
        return False
    return importlib.util.find_spec(_PIP[name]) is not None


def available_backends() -> list[str]:
    """Names of the backends usable on this machine, ours first."""
    return [n for n in BACKEND_NAMES if is_installed(n)]


@lru_cache(maxsize=None)
def get_backend(name: str) -> ItnBackend:
    """The (cached) backend called ``name``.

    Raises ValueError for an unknown name and :class:`BackendUnavailable` (an ImportError) when
    the package behind an optional backend is missing.
    """
    cls = _CLASSES.get(name)
    if cls is None:
        raise ValueError(f"unknown ITN backend {name!r}; choose one of: {', '.join(BACKEND_NAMES)}")
    if not is_installed(name):
        raise BackendUnavailable(name)
    return cls()


__all__ = [
    "BACKEND_NAMES",
    "BackendUnavailable",
    "Cn2anBackend",
    "ItnBackend",
    "OursBackend",
    "WetextBackend",
    "available_backends",
    "get_backend",
    "is_installed",
]
