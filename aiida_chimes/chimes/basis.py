"""ChIMES radial basis: Morse-transformed Chebyshev polynomials, smooth cutoffs and the 2-body penalty.

Definitions follow the official calculator (chimesFF ``set_cheby_polys``, ``set_polys_out_of_range``,
``get_fcut``, ``get_penalty``); see ``shared/notes/chimes.md`` sections 1.2-1.5.  All functions are numba
kernels that write into caller-provided arrays, so they never allocate.
"""

import math

from numba import njit

#: Below the inner cutoff the polynomials are continued with an exponentially damped slope (Angstrom).
INNER_SMOOTH_DISTANCE = 0.01

FCUT_CUBIC = 0
FCUT_TERSOFF = 1


@njit(cache=True, inline="always")
def morse_scaling(rin, rout, lam):
    """(x_avg, x_diff) of the Morse transform that maps rin -> +1 and rout -> -1."""
    xmin = math.exp(-rin / lam)
    xmax = math.exp(-rout / lam)
    return 0.5 * (xmin + xmax), 0.5 * (xmin - xmax)


@njit(cache=True)
def chebyshev(r, rin, lam, xavg, xdiff, order, T, dT):
    """Fill T[0..order] and dT[0..order] (d/dr) of the Morse-transformed Chebyshev polynomials at r.

    For r < rin the official SMOOTH continuation is used: values and slopes are taken at rin and the slope
    is damped by exp((r - rin)/d) with d = INNER_SMOOTH_DISTANCE.
    """
    rr = r if r >= rin else rin
    s = math.exp(-rr / lam)
    x = (s - xavg) / xdiff
    dxdr = (-s / lam) / xdiff
    # second-kind polynomials U_n stored in dT first
    T[0] = 1.0
    dT[0] = 1.0
    if order >= 1:
        T[1] = x
        dT[1] = 2.0 * x
    for n in range(2, order + 1):
        T[n] = 2.0 * x * T[n - 1] - T[n - 2]
        dT[n] = 2.0 * x * dT[n - 1] - dT[n - 2]
    for n in range(order, 0, -1):
        dT[n] = n * dxdr * dT[n - 1]
    dT[0] = 0.0
    if r < rin:
        damp = math.exp((r - rin) / INNER_SMOOTH_DISTANCE)
        for n in range(order + 1):
            T[n] += INNER_SMOOTH_DISTANCE * (damp - 1.0) * dT[n]
            dT[n] *= damp


@njit(cache=True, inline="always")
def cutoff(r, rc, ftype, fvar):
    """Smooth outer cutoff f(r) and df/dr: CUBIC (1 - r/rc)^3 or TERSOFF with onset fraction fvar."""
    if ftype == FCUT_CUBIC:
        if r >= rc:
            return 0.0, 0.0
        a = 1.0 - r / rc
        return a * a * a, -3.0 * a * a / rc
    thresh = rc - fvar * rc
    if r < thresh:
        return 1.0, 0.0
    if r > rc:
        return 0.0, 0.0
    arg = (r - thresh) / (rc - thresh) * math.pi + 0.5 * math.pi
    return 0.5 + 0.5 * math.sin(arg), 0.5 * math.cos(arg) * math.pi / (rc - thresh)


@njit(cache=True, inline="always")
def penalty(r, rin, dist, scale):
    """2-body penalty A (rin + d - r)^3 for r < rin + d, and its derivative d/dr."""
    rp = rin + dist - r
    if rp <= 0.0:
        return 0.0, 0.0
    return scale * rp * rp * rp, -3.0 * scale * rp * rp
