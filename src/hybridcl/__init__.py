"""hybridcl: continual learning with LoRA adapters + full transformer layers on code models."""

__version__ = "0.1.0"
