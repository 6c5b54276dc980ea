"""The heavy runner of the reliability and security suite: ``python -m tests.stress``."""
