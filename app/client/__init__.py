"""Python clients of Exhaust's HTTP API.

* :mod:`app.client.fill` — :class:`ExhaustClient`: fill managed datasets from rows, CSV files
  of any size or typed files, and read them back.
"""

from app.client.fill import CsvChunks, ExhaustClient, FillSummary, fill_body, sniff_columns

__all__ = ["CsvChunks", "ExhaustClient", "FillSummary", "fill_body", "sniff_columns"]
