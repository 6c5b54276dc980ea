"""A vendor's app frozen with PyInstaller, built and run by the tests here."""
