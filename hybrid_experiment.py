"""The seed's entry point: run the seed's experiment (configs/seed.yaml), i.e. `hybridcl run configs/seed.yaml`.

Extra arguments go to `hybridcl run` (e.g. `--set train.batch_size=16 --seeds 3`). Without the hub
it stops with a message naming the offline route: `make demo` / `hybridcl run configs/local.yaml`.
"""

import sys
from pathlib import Path

from _bootstrap import ensure_hybridcl

OFFLINE_HINT = (
    "no hub? the offline default runs the same protocol on a mined corpus and a stand-in base: "
    "`make demo` (or `hybridcl run configs/local.yaml`)"
)

if __name__ == "__main__":
    ensure_hybridcl()
    from hybridcl.cli import main, pin_hash_seed

    pin_hash_seed()
    status = main(["run", str(Path(__file__).with_name("configs") / "seed.yaml"), *sys.argv[1:]])
    if status:
        print(OFFLINE_HINT, file=sys.stderr)
    sys.exit(status)
