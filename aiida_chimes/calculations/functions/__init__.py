"""Calcfunctions of aiida-chimes: small data transformations that keep their provenance."""
