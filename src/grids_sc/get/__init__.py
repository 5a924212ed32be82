"""Getters: stored results as tidy DataFrames (as :mod:`scanpy.get`).

- :func:`explain_df`: the selected peaks of one ``explain``/``attribute`` result.
- :func:`links`: all (or the given) results as one peak–gene link table.
- :func:`link_peaks_df`: a :func:`grids_sc.tl.link_peaks` result (every tested gene, group
  and peak with effects, p- and q-values).
- :func:`link_peaks_diff`: whether each link's effect differs between two groups.
"""

from ._link_peaks import link_peaks_df, link_peaks_diff
from ._links import explain_df, links

__all__ = ["explain_df", "link_peaks_df", "link_peaks_diff", "links"]
