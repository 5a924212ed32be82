"""Getters: stored results as tidy DataFrames (as :mod:`scanpy.get`).

- :func:`explain_df`: the selected peaks of one ``explain``/``attribute`` result.
- :func:`links`: all (or the given) results as one peak–gene link table.
"""

from ._links import explain_df, links

__all__ = ["explain_df", "links"]
