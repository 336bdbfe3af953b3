"""Running a scenario: servers, load, monitoring, the run's orchestration."""
