"""CodeSearchNet in (hub, local files, the offline miner) and batches out."""
