"""The ``axis`` command's groups, assembled by the top-level ``cli.py``."""
