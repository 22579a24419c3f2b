"""Console entry points that CalcJobs run on the target computer (``chimes-lsq``, ``chimes-solve``)."""
