"""CalcJobs of aiida-chimes: each writes input files and runs one of our console scripts."""
