"""Running a scenario: servers, load, monitoring, the run's orchestration."""

from pathlib import Path

# The checkout: manage.py, the upstream stub and the default source tree served.
ROOT = Path(__file__).resolve().parents[2]
