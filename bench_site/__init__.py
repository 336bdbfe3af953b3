"""The system under test: a Django project serving paired sync/async views.

`registry.py` is pure data (no Django import) and is what the runner reads;
everything else here is the Django project built from it.
"""
