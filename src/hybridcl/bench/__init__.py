"""Side-by-side benchmark: hybridcl's training stage and evaluation vs `transformers.Seq2SeqTrainer`.

    python benchmarks/bench.py --shape tiny --device cpu      # or: hybridcl bench ...

See `compare.py` for what is measured and `hf_trainer.py` for the baseline.
"""
