"""The SDK's message catalogues compiled for a test module, from the committed ``.po`` files.

The ``.mo`` files are build artefacts (``make messages``); the tests compile
the sources with Babel into a temporary folder and point
:data:`software_dna.i18n.LOCALE_DIR` there, so they test what is committed
whether or not a build ran first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tools.catalogues import compile_catalogues

from software_dna import i18n

__all__ = ["SOURCES", "compiled_catalogues", "sdk_catalogues"]

#: Where the committed catalogues are (``<language>/LC_MESSAGES/<domain>.po``).
SOURCES = Path(i18n.__file__).resolve().parent / "locale"


def compiled_catalogues(target: Path, domain: str = "software_dna") -> list[str]:
    """Compile every ``.po`` under :data:`SOURCES` into ``target`` (as the build does,
    tools/catalogues.py); the languages of ``domain``."""
    written = compile_catalogues(target, locale=SOURCES, only_stale=False)
    return sorted({mo.parent.parent.name for mo in written if mo.stem == domain})


@pytest.fixture(scope="module")
def sdk_catalogues(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The SDK's catalogues compiled into a temporary folder that ``translation`` reads."""
    target = tmp_path_factory.mktemp("locale")
    assert compiled_catalogues(target), "no catalogue of the software_dna domain"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(i18n, "LOCALE_DIR", target)
        i18n.translation.cache_clear()
        yield target
    i18n.translation.cache_clear()
