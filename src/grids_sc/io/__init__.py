"""Reading and writing beyond ``.h5mu``: peak–gene links for genome browsers and benchmarks.

- :func:`write_links`: stored selections as IGV BEDPE, UCSC interact, a tidy TSV or ENCODE
  E2G predictions (the format of the CRISPR enhancer–gene benchmark).
- :func:`e2g_table`: stored selections as an ENCODE E2G predictions table.
"""

from ._e2g import E2G_COLUMNS, e2g_table
from ._links import FORMATS, write_links

__all__ = ["E2G_COLUMNS", "FORMATS", "e2g_table", "write_links"]
