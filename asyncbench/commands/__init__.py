"""One function per command of runner.py."""
