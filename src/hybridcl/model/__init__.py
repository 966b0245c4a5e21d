"""The models of the experiment.

- `base.py`: loading the frozen base (Salesforce/codet5-small, or its architecture with random weights).
- `hybrid.py`: the hybrid model on top of it: named PEFT LoRA adapters (one per task) on the base and
  extra full T5 encoder layers appended to the encoder stack, switched per task.
"""
