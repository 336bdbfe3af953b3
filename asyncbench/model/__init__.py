"""The data: results, scenarios, flags, cell summaries."""
