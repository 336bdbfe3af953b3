"""Everything a reader sees: text, charts, HTML, CSV, terminal."""
