"""Numbers from results: statistics, selection, comparisons, verdicts."""
