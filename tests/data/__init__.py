"""Tests of the AiiDA data nodes (the folder also holds the checked-in data files)."""
