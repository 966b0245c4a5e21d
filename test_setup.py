"""The seed's set-up check: imports, WordNet, tree-sitter grammars, a forward/backward pass of the
hybrid model and the device, each with how to fix it. Same as `hybridcl doctor`."""

import sys

from _bootstrap import ensure_hybridcl

if __name__ == "__main__":
    ensure_hybridcl()
    from hybridcl.doctor import run_checks

    sys.exit(0 if run_checks() else 1)
