"""Stand-in for the managed runtime's `/var/runtime/bootstrap.py`, which only exists inside Lambda.

It runs the same Runtime API loop with no streaming sink, so every response is buffered, exactly
as the stock runtime answers. Locally it plays two parts: the runtime of non-streaming functions,
and the argument Lambda passes to `exec-wrapper` (which the wrapper replaces with our loop).
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    sys.path[0] = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())  # not this script's folder
    from shared.runtime.bootstrap import main

    main(streaming=False)
