"""bf16 against float32, hybridcl and Seq2SeqTrainer: seconds per training step and per generation batch
(--help for options)."""

import sys

from hybridcl.bench.precision import main

if __name__ == "__main__":
    sys.exit(main())
