"""The seed's set-up check, the same as `hybridcl doctor CONFIG`: imports, WordNet, tree-sitter grammars, a
forward/backward pass of the hybrid model and the device, then the model and data of CONFIG (default: the
seed's experiment, configs/seed.yaml) resolved without downloading, and the run's plan. Exit code 2 on any
problem, one line each.

    python test_setup.py [CONFIG] [--set KEY=VALUE ...]
"""

import sys
from pathlib import Path

from _bootstrap import ensure_hybridcl

SEED_CONFIG = Path(__file__).with_name("configs") / "seed.yaml"

if __name__ == "__main__":
    ensure_hybridcl()
    from hybridcl.cli import main

    args = sys.argv[1:]
    if not args or args[0].startswith("--"):
        args = [str(SEED_CONFIG), *args]
    sys.exit(main(["doctor", *args]))
