"""Coverage-guided fuzzing (atheris / libFuzzer) of the token parser and LicenseClient.check().

Run: ``.venv/bin/python fuzz/fuzz_token.py -runs=200000 fuzz/corpus`` (any
libFuzzer flags). The property, checked on every input: ``verify_token`` and
``check()`` raise nothing but a LicenseError, and return a license only for
the one genuine token of the seed corpus (signed by the trusted key, for this
product and this machine). A violation raises, and libFuzzer saves the input.
Seeds: a genuine token and a few attacks (written to the corpus folder
given, or to a temporary one).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from software_dna import License, LicenseError
    from software_dna.license import verify_token

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("SOFTWARE_DNA_STATE_HOME", tempfile.mkdtemp(prefix="sdna-fuzz-"))
from tests.security._tokenlab import PRODUCT, Lab

LAB = Lab()
KEYS = {LAB.key.public_key.pid: LAB.key.public_key}
GENUINE = LAB.valid


def one_input(data: bytes) -> None:
    """libFuzzer's entry point: ``data`` is the token text (UTF-8, errors replaced)."""
    text = data.decode("utf-8", "replace")
    try:
        lic = verify_token(text, KEYS, PRODUCT)
    except LicenseError:
        lic = None
    if lic is not None and text != GENUINE:
        raise AssertionError(f"verify_token accepted a forged token: {text!r}")
    result = LAB.check_stored(text)  # LicenseError is returned, anything else propagates
    if isinstance(result, License) and text != GENUINE:
        raise AssertionError(f"check() accepted a forged token: {text!r}")


def _seed(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    seeds = {"genuine": GENUINE, "other-key": Lab().valid, "v4-local": "v4.local." + GENUINE[10:],
             "padded": GENUINE + "==", "empty-footer": GENUINE.rsplit(".", 1)[0] + "."}
    for name, text in seeds.items():
        (folder / name).write_text(text, encoding="utf-8")


def main() -> None:
    """Seed the corpus folder (the first non-flag argument) and run libFuzzer."""
    folders = [a for a in sys.argv[1:] if not a.startswith("-")]
    corpus = Path(folders[0]) if folders else Path(tempfile.mkdtemp(prefix="sdna-corpus-"))
    _seed(corpus)
    argv = sys.argv if folders else [*sys.argv, str(corpus)]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
