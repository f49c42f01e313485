"""Small shared helpers: atomic file writes (io.py), the command-line tools' error handling (cli.py)."""
