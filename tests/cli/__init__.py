"""Tests of the aiida-chimes command line."""
