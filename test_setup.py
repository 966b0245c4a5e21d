"""The seed's set-up check: imports, WordNet, tree-sitter grammars, a forward/backward pass of the
hybrid model and the device, each with how to fix it. Same as `hybridcl doctor`."""

import sys

from hybridcl.doctor import run_checks

if __name__ == "__main__":
    sys.exit(0 if run_checks() else 1)
