"""The benchmark harness: ``python -m bench`` (see ``bench/cli.py`` and the README)."""
