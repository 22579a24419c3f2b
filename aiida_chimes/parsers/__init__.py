"""Parsers of aiida-chimes: one per CalcJob."""
