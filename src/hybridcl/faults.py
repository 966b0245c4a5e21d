"""Named kill points for the fault-injection tests.

`HYBRIDCL_KILL_AT=<point>[#<n>]` makes the process SIGKILL itself the n-th time (default: the first)
it passes `<point>`, so a test can stop a run at an exact place instead of racing a timer. Points:
`train step` (after an optimizer step), `evaluated` (after one task's predictions of a stage are
written), `seed done` (after every strategy of a seed), and `write <file name>` (inside every atomic
write, after the temporary file is complete and before it replaces the target). Unset, a point costs
one environment look-up.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "HYBRIDCL_KILL_AT"
_passed: Counter = Counter()


def kill_point(point: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _, nth = spec.partition("#")
    if name != point:
        return
    _passed[point] += 1
    if _passed[point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
