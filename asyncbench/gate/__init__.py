"""The regression gate: configuration, compatibility, normalisation, decisions."""
