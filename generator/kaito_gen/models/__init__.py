"""Frozen input and configuration models."""
