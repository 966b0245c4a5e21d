"""First and cached load of a seed-sized task from each form CodeSearchNet is served in, at its size.

    python benchmarks/hub_load.py [--corpus data/corpus] [--rows 412178] [--valid-rows 23107] [--forms ...]

Builds (once, under --work) one replica per form (hybridcl.data.forms) whose python train split has
--rows rows (CodeSearchNet python train: 412,178) and validation --valid-rows (23,107), by repeating the
mined corpus's python train records with a numbered comment so every row is distinct: parquet in 8
shards (train) and 1 (valid), the release's jsonl.gz in 14 parts (train) and 1 (valid), as the release
has. Then, per form, times `load_task_data` for the seed's 8K/2K task through `data.hub_root` with an
empty cache (first load: listing, content fingerprint, reading, sampling) and again (cached load:
listing, fingerprint from the hash cache, the cached sample). `--hub-cache` also places the parquet
conversion in a Hugging Face cache and times the hub default (data.hub_revision=auto), offline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from dataclasses import replace
from datetime import date
from itertools import cycle, islice
from pathlib import Path

from hybridcl.data.csn import load_task_data, read_records
from hybridcl.data.forms import FORMS, split_path
from hybridcl.data.replicas import write_replica
from hybridcl.data.source import resolve_data
from hybridcl.hf_cache import place_in_cache
from hybridcl.settings import DataConfig

SHARDS = {"parquet-conversion": 8, "push-to-hub-parquet": 8, "release-zip": 14, "release-jsonl": 14}
TARGETS_S = {"parquet-conversion": 20, "push-to-hub-parquet": 20, "release-zip": 90, "release-jsonl": 90}
CACHED_TARGET_S = 2.0


def copies(corpus: Path, split: str, n: int) -> list:
    source = list(read_records(split_path(corpus, "python", split), "python"))
    return [
        replace(record, code=f"{record.code}\n# copy {i // len(source)}", partition=split)
        for i, record in enumerate(islice(cycle(source), n))
    ]


def build_replicas(corpus: Path, work: Path, forms: list[str], rows: int, valid_rows: int) -> dict[str, Path]:
    folders = {form: work / f"{form}-{rows}" for form in forms}
    todo = [form for form, folder in folders.items() if not (folder / "done").is_file()]
    if todo:
        records = {"train": copies(corpus, "train", rows), "valid": copies(corpus, "valid", valid_rows)}
        for form in todo:
            shutil.rmtree(folders[form], ignore_errors=True)
            start = time.perf_counter()
            write_replica(records, folders[form], "python", shards={"train": SHARDS[form], "valid": 1}, form=form)
            (folders[form] / "done").write_text("")
            print(f"wrote the {form} replica in {time.perf_counter() - start:.0f} s", flush=True)
    return folders


def timed_load(cfg: DataConfig) -> tuple[float, dict, object]:
    start = time.perf_counter()
    source = resolve_data(cfg, ["python"])
    task = load_task_data(cfg, "python", source)
    return time.perf_counter() - start, task.counts, source


def measure(name: str, cfg: DataConfig) -> dict:
    shutil.rmtree(cfg.cache_dir, ignore_errors=True)
    first, counts, source = timed_load(cfg)
    cached, cached_counts, _ = timed_load(cfg)
    assert cached_counts == counts
    size = sum(bytes_ for _, bytes_ in source.files)
    print(
        f"{name:<28} first {first:6.1f} s   cached {cached:5.2f} s   {len(source.files)} files, "
        f"{size / 1e6:.0f} MB; {counts}",
        flush=True,
    )
    return {
        "form": source.form,
        "first_load_s": round(first, 2),
        "cached_load_s": round(cached, 3),
        "files": len(source.files),
        "bytes": size,
        "counts": counts,
    }


def hub_cache_load(folder: Path, work: Path, cfg: DataConfig) -> dict:
    """The hub default (auto) read offline from a Hugging Face cache holding the conversion replica."""
    hf_cache = work / "hf-cache"
    if not hf_cache.is_dir():
        place_in_cache(folder, hf_cache, cfg.hub_id, "dataset", "refs/convert/parquet")
    os.environ["HF_HUB_OFFLINE"] = "1"
    from huggingface_hub import constants

    constants.HF_HUB_CACHE = str(hf_cache)
    return measure("hub default (auto, offline)", replace(cfg, hub_root="", cache_dir=str(work / "cache-hub")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="data/corpus", help="a corpus written by `hybridcl corpus build`")
    parser.add_argument("--rows", type=int, default=412_178, help="python train rows of the replicas")
    parser.add_argument("--valid-rows", type=int, default=23_107, help="python validation rows of the replicas")
    parser.add_argument("--forms", nargs="+", default=list(FORMS), choices=FORMS, help="forms to time")
    parser.add_argument("--hub-cache", action="store_true", help="also time the hub default from an HF cache")
    parser.add_argument("--work", default=".cache/hybridcl/bench-hub", help="where the replicas and caches go")
    args = parser.parse_args()
    work = Path(args.work)
    folders = build_replicas(Path(args.corpus), work, args.forms, args.rows, args.valid_rows)
    results = {}
    for form, folder in folders.items():
        cfg = DataConfig(source="hub", hub_root=str(folder), n_train=8000, n_valid=2000, cache_dir=str(work / "cache"))
        results[form] = measure(form, cfg)
        results[form]["met_targets"] = (
            results[form]["first_load_s"] <= TARGETS_S[form] and results[form]["cached_load_s"] <= CACHED_TARGET_S
        )
    if args.hub_cache and "parquet-conversion" in folders:
        cfg = DataConfig(source="hub", n_train=8000, n_valid=2000)
        results["hub-default-offline"] = hub_cache_load(folders["parquet-conversion"], work, cfg)
    result = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "rows": args.rows,
        "valid_rows": args.valid_rows,
        "targets_s": {"first": TARGETS_S, "cached": CACHED_TARGET_S},
        "forms": results,
    }
    out = Path(__file__).parent / "results" / f"{date.today()}-hub-load.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
