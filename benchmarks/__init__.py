"""Benchmarks: figures side by side, written to benchmarks/RESULTS.md (python -m benchmarks.run)."""

import atexit
import os
import shutil
import tempfile

if "EXPERITURE_DATA_DIR" not in os.environ:
    # Every server a benchmark starts, in this process or a child, remembers campaigns in a folder of its own that
    # goes away at exit: never in the user's data directory, never from one run to the next.
    _data = tempfile.mkdtemp(prefix="experiture-bench-")
    os.environ["EXPERITURE_DATA_DIR"] = _data
    atexit.register(shutil.rmtree, _data, True)
