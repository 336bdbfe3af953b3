"""Migration operations that act on some database backends only."""

from __future__ import annotations

from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.operations import AddIndex
from django.db.migrations.state import ProjectState


class AddIndexOnPostgreSQL(AddIndex):
    """AddIndex that creates the index on PostgreSQL and does nothing elsewhere.

    The model state still gains the index on every backend (state_forwards is
    inherited), so `makemigrations --check` stays clean and the models can
    declare the GinIndex in Meta; only the DDL is skipped where GIN does not
    exist (SQLite), which lets the same migrations run on both.
    """

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self) -> str:
        return f"{super().describe()} (PostgreSQL only)"
