"""First and cached load of a seed-sized task through the hub path, on a replica of CodeSearchNet's size.

    python benchmarks/hub_load.py [--corpus data/corpus] [--rows 412178] [--valid-rows 23107]

Builds (once, under --work) a replica of the hub's parquet layout whose python train split has
--rows rows (CodeSearchNet python train: 412,178) in 8 shards, by repeating the mined corpus's python
train records with a numbered comment so every row is distinct; then times `load_task_data` for the
seed's 8K/2K task with an empty sample cache (first load) and again (cached load).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from dataclasses import replace
from datetime import date
from itertools import cycle, islice
from pathlib import Path

from hybridcl.config import DataConfig
from hybridcl.data.csn import load_task_data, read_records, split_path
from hybridcl.data.hub import write_replica


def build_replica(corpus: Path, out: Path, rows: int, valid_rows: int) -> None:
    if (out / "python" / "train").is_dir():
        return
    for split, n, shards in (("train", rows, 8), ("valid", valid_rows, 1)):
        source = list(read_records(split_path(corpus, "python", split), "python"))
        copies = [
            replace(record, code=f"{record.code}\n# copy {i // len(source)}")
            for i, record in enumerate(islice(cycle(source), n))
        ]
        write_replica({split: copies}, out, "python", shards=shards)


def timed_load(cfg: DataConfig) -> tuple[float, dict]:
    start = time.perf_counter()
    task = load_task_data(cfg, "python")
    return time.perf_counter() - start, task.counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="data/corpus", help="a corpus written by `hybridcl corpus build`")
    parser.add_argument("--rows", type=int, default=412_178, help="python train rows of the replica")
    parser.add_argument("--valid-rows", type=int, default=23_107, help="python validation rows of the replica")
    parser.add_argument("--work", default=".cache/hybridcl/bench-hub", help="where the replica and cache go")
    args = parser.parse_args()
    work = Path(args.work)
    replica = work / f"replica-{args.rows}"
    build_replica(Path(args.corpus), replica, args.rows, args.valid_rows)
    shutil.rmtree(work / "cache", ignore_errors=True)
    cfg = DataConfig(source="hub", hub_root=str(replica), n_train=8000, n_valid=2000, cache_dir=str(work / "cache"))
    first, counts = timed_load(cfg)
    cached, _ = timed_load(cfg)
    print(
        f"python train {counts['train_read']:,} rows, valid {counts['valid_read']:,}: "
        f"first load {first:.1f} s, cached load {cached:.2f} s; {counts}"
    )
    result = {
        "machine": platform.processor() or platform.machine(),
        "rows": args.rows,
        "valid_rows": args.valid_rows,
        "first_load_s": round(first, 2),
        "cached_load_s": round(cached, 3),
        "counts": counts,
    }
    out = Path(__file__).parent / "results" / f"{date.today()}-hub-load.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
