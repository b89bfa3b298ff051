"""Emitters: one module per manifest kind, applied in the order of EMITTERS."""
