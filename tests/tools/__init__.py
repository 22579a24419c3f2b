"""Tests of aiida_chimes.tools."""
