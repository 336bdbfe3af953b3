"""The regression gate: is the current run slower than the baseline?

config (settings), compat (may two runs be compared), normalize (what is
compared), decide (tests, Holm, threshold, outcome) and api (`compare`, the
one entry point). The names a caller needs are re-exported here.
"""

from asyncbench.gate.api import compare
from asyncbench.gate.compat import check_environment
from asyncbench.gate.config import NORMALIZE_MODES, GateConfig, GateConfigError, resolve_config
from asyncbench.gate.decide import EXIT_INVALID, EXIT_OK, EXIT_REGRESSION, Comparison, GateResult

__all__ = [
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_REGRESSION",
    "NORMALIZE_MODES",
    "Comparison",
    "GateConfig",
    "GateConfigError",
    "GateResult",
    "check_environment",
    "compare",
    "resolve_config",
]
