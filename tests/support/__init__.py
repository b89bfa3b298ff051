"""Shared test helpers: the manifest validator every test uses (see manifests.py)."""
