"""Build hook only (the metadata is in pyproject.toml): compile the message catalogues.

The compiled catalogues (``.mo``) are build artefacts, not in git: ``build_py``
compiles every ``.po`` into the build, so a wheel built from a clean checkout
or from the sdist carries them; an editable install compiles them beside
their ``.po``.  tools/catalogues.py holds the one implementation.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _catalogues() -> ModuleType:
    # tools/ is no package of the distribution: load the file itself.
    spec = importlib.util.spec_from_file_location("_sdna_catalogues",
                                                  ROOT / "tools" / "catalogues.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithCatalogues(build_py):
    """``build_py`` that also compiles ``locale/<language>/LC_MESSAGES/<domain>.po`` into
    ``.mo`` files in the built package (CatalogueError: a catalogue that does not compile)."""

    def run(self) -> None:
        super().run()
        tool = _catalogues()
        if self.editable_mode:
            tool.compile_catalogues()
        else:
            tool.compile_catalogues(Path(self.build_lib) / "software_dna" / "locale",
                                    only_stale=False)


setup(cmdclass={"build_py": BuildWithCatalogues})
