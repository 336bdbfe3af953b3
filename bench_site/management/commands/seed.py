"""`python manage.py seed [--rows N] [--batch B]`: deterministic benchmark data."""

from __future__ import annotations

import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from bench_site.seeding import seed
from bench_site.sessions import seed_session


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = (
        "Load deterministic rows into Item and ItemNoIndex (idempotent: tables that "
        "already hold exactly those rows are left alone). Runs ANALYZE on PostgreSQL. "
        "Writes the logged-in session the startproject and async-native middleware stacks are loaded with."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--rows", type=_positive, default=100_000, help="rows per table")
        parser.add_argument("--batch", type=_positive, default=5_000, help="rows per bulk insert")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        try:
            wrote = seed(rows=options["rows"], batch=options["batch"], progress=self.stdout.write)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        # Every run, not only when rows were written: the session is encoded
        # with this checkout's SECRET_KEY, which a database may predate.
        seed_session()
        self.stdout.write("logged-in session of the startproject and async-native stacks written")
        verb = "seeded" if wrote else "already seeded"
        self.stdout.write(
            self.style.SUCCESS(f"{verb}: {options['rows']} rows per table in {time.perf_counter() - started:.1f} s")
        )
