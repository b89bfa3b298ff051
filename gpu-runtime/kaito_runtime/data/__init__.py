"""`kaito-data fetch`: the tuning Job's input downloader (Kaito's `data-downloader` init container).

Public surface: `fetch_all` (download URLs into a directory under Kaito's SSRF rules) and the
errors it raises. The console script lives in `kaito_runtime.data.cli`.
"""

from kaito_runtime.data.errors import FetchError, InvalidURLError, RefusedError
from kaito_runtime.data.fetch import FetchOptions, FetchResult, fetch_all

__all__ = ["FetchError", "FetchOptions", "FetchResult", "InvalidURLError", "RefusedError", "fetch_all"]
