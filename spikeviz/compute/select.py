"""Order statistics in numba kernels: the k-th smallest value and the median, in place.

One implementation shared by the kernels that need an exact median (templates' "median"
operator, the common median reference): quickselect with a median-of-three pivot. Both
functions reorder ``values[:n]``; they are ``@numba.njit`` functions meant to be called from
other kernels (any real dtype). The median of an even count is the mean of the two middle
values, as ``numpy.median`` defines it (the sum taken in the values' dtype).
"""

from __future__ import annotations

import numba


@numba.njit(cache=True, nogil=True)
def select_rank(values, n, rank):
    """The element of rank ``rank`` (0-based) of ``values[:n]``; reorders ``values[:n]`` so
    that ``values[rank]`` holds it, every element before it is <= and every one after >=."""
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if values[mid] < values[lo]:
            values[mid], values[lo] = values[lo], values[mid]
        if values[hi] < values[lo]:
            values[hi], values[lo] = values[lo], values[hi]
        if values[hi] < values[mid]:
            values[hi], values[mid] = values[mid], values[hi]
        pivot = values[mid]
        i, j = lo, hi
        while i <= j:
            while values[i] < pivot:
                i += 1
            while values[j] > pivot:
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                i += 1
                j -= 1
        if rank <= j:
            hi = j
        elif rank >= i:
            lo = i
        else:
            break
    return values[rank]


@numba.njit(cache=True, nogil=True)
def lower_middle(values, rank):
    """The largest of ``values[:rank]`` (after :func:`select_rank` put rank ``rank`` in place,
    the element of rank ``rank - 1``). ``rank`` >= 1."""
    lower = values[0]
    for j in range(1, rank):
        if values[j] > lower:
            lower = values[j]
    return lower


@numba.njit(cache=True, nogil=True)
def median_inplace(values, n):
    """Median of ``values[:n]`` (n >= 1), reordering them; an even count gives the mean of the
    two middle values."""
    upper = select_rank(values, n, n // 2)
    if n % 2:
        return upper
    return (lower_middle(values, n // 2) + upper) * 0.5
