"""Reading and writing beyond ``.h5mu``: peak–gene links for genome browsers.

- :func:`write_links`: stored selections as IGV BEDPE, UCSC interact or a tidy TSV.
"""

from ._links import FORMATS, write_links

__all__ = ["FORMATS", "write_links"]
