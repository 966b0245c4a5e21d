"""hybridcl vs transformers.Seq2SeqTrainer, side by side: the same as `hybridcl bench` (--help for options)."""

import sys

from hybridcl.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
