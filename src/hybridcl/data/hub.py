"""CodeSearchNet from the Hugging Face hub: which revision, which form, which files, through huggingface_hub.

The dataset's own loading script no longer runs under datasets 5.x, so the hub dataset is read by its
files. `data.hub_revision`:

    auto (default)   the parquet conversion branch `refs/convert/parquet` first (form parquet-conversion,
                     the fastest to read), then `main` (whichever form its listing shows: push_to_hub
                     parquet, the release's zip archives, or the release unpacked)
    a branch, tag or commit   only that revision, in whichever form its listing shows

Online, a revision's listing and commit come from `HfApi.dataset_info(files_metadata=True)`. Offline
(HF_HUB_OFFLINE, or the endpoint does not answer a 3-second probe) they come from the local Hugging Face
cache: `refs/<revision>` names the commit (a revision with a slash is a nested path there, as
huggingface_hub writes it: `refs/refs/convert/parquet`) and the listing is the one saved under
`data.cache_dir` when the revision was resolved online, else what `snapshots/<commit>/` holds. Files are
downloaded with `hf_hub_download` at the commit, into that cache, so a second run downloads nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

from hybridcl.atomic import atomic_path
from hybridcl.data.forms import Listing, plan_files, recognise
from hybridcl.data.pinning import DataSource
from hybridcl.data.schema import DataError
from hybridcl.fingerprints import list_folder
from hybridcl.hf_cache import cached_commit, repo_folder, snapshot_folder, write_ref
from hybridcl.hub_access import hub_unavailable
from hybridcl.settings import DataConfig

CONVERSION_BRANCH = "refs/convert/parquet"
AUTO = "auto"
AUTO_REVISIONS = (CONVERSION_BRANCH, "main")
REPO_TYPE = "dataset"
OFFLINE_HINT = (
    "offline alternatives: a folder in one of CodeSearchNet's forms with `--set data.hub_root=DIR` "
    "(`hybridcl corpus replica` writes one), `hybridcl corpus build --out data/corpus` then "
    "`--set data.source=data/corpus`, or `--set data.source=DIR` with a directory of CodeSearchNet jsonl(.gz) files"
)


def revisions(cfg: DataConfig) -> tuple[str, ...]:
    """The revisions `cfg` lets the hub path read, in the order tried."""
    return AUTO_REVISIONS if cfg.hub_revision == AUTO else (cfg.hub_revision,)


def resolve_hub(cfg: DataConfig, languages: Sequence[str], splits: Sequence[str]) -> DataSource:
    """The first revision of `revisions(cfg)` whose listing is a form holding every split asked for."""

    def plan(listing: Listing, where: str) -> tuple[str, list[str]]:
        layout = recognise(listing, where)
        return layout.form, plan_files(layout, languages, splits, where)

    return pin_hub_files(cfg, plan, "CodeSearchNet", OFFLINE_HINT)


# A revision's listing and its name for messages -> (form, the files to read); a DataError when it has none.
Plan = Callable[[Listing, str], tuple[str, list[str]]]


def pin_hub_files(cfg: DataConfig, plan: Plan, what: str, offline_hint: str) -> DataSource:
    """The dataset cfg.hub_id at the first revision of `revisions(cfg)` where `plan` finds its files, pinned
    to that revision's commit; none is one DataError naming `what`, each revision's failure and `offline_hint`."""
    unavailable = hub_unavailable()
    failures = []
    for revision in revisions(cfg):
        try:
            return _pin_revision(cfg, revision, plan, unavailable)
        except DataError as error:
            failures.append(str(error))
    where = (
        f" ({unavailable}; looked in the local Hugging Face cache {repo_folder(cfg.hub_id, REPO_TYPE)})"
        if unavailable
        else ""
    )
    raise DataError(f"{what} from the hub {cfg.hub_id}{where}: {'; '.join(failures)}; {offline_hint}")


def _pin_revision(cfg: DataConfig, revision: str, plan: Plan, unavailable: str | None) -> DataSource:
    where = f"{cfg.hub_id}@{revision}"
    commit, listing = cached_listing(cfg, revision) if unavailable else remote_listing(cfg, revision)
    form, rels = plan(listing, where)
    sizes = dict(listing)
    snapshot = snapshot_folder(cfg.hub_id, REPO_TYPE, commit)
    missing = [rel for rel in rels if not (snapshot / rel).is_file()]
    if missing and unavailable:
        raise DataError(f"{where} (commit {commit}): {missing[0]} and {len(missing) - 1} more not in the local cache")
    files = tuple((rel, sizes[rel]) for rel in rels)
    download = sum(sizes[rel] for rel in missing)
    return DataSource("hub", cfg.hub_id, revision, commit, None, form, files, not missing, download)


def remote_listing(cfg: DataConfig, revision: str) -> tuple[str, list[tuple[str, int]]]:
    """(commit, listing) of a revision, from the hub; saved under data.cache_dir for offline runs."""
    from huggingface_hub import HfApi

    try:
        info = HfApi().dataset_info(cfg.hub_id, revision=revision, files_metadata=True)
    except Exception as error:  # hub and network errors come in many types; all mean "cannot list"
        raise DataError(f"{cfg.hub_id}@{revision}: cannot list ({_first_line(error)})") from None
    if not info.sha:
        raise DataError(f"{cfg.hub_id}@{revision}: the hub named no commit for this revision")
    listing = sorted((sibling.rfilename, sibling.size or 0) for sibling in info.siblings or ())
    path = _saved_listing(cfg, info.sha)
    if not path.is_file():
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(listing))
    return info.sha, listing


def cached_listing(cfg: DataConfig, revision: str) -> tuple[str, list[tuple[str, int]]]:
    """(commit, listing) of a revision from the local caches only."""
    commit = cached_commit(cfg.hub_id, REPO_TYPE, revision)
    if commit is None:
        raise DataError(f"{cfg.hub_id}@{revision}: not in the local cache")
    saved = _saved_listing(cfg, commit)
    if saved.is_file():
        return commit, [(path, size) for path, size in json.loads(saved.read_text())]
    folder = snapshot_folder(cfg.hub_id, REPO_TYPE, commit)
    return commit, list_folder(folder) if folder.is_dir() else []


def _saved_listing(cfg: DataConfig, commit: str) -> Path:
    return Path(cfg.cache_dir, "hub-listings", cfg.hub_id.replace("/", "--"), f"{commit}.json")


def fetch_files(source: DataSource, rels: Sequence[str]) -> list[tuple[Path, str]]:
    """(local path, name for messages) of `rels` at the source's commit, downloaded into the cache if needed."""
    paths = []
    snapshot = snapshot_folder(source.id, REPO_TYPE, source.commit)
    for rel in rels:
        path = snapshot / rel
        if not path.is_file():
            path = _download(source, rel)
        paths.append((path, f"{source.id}@{source.commit[:12]}/{rel}"))
    _record_ref(source)
    return paths


def _download(source: DataSource, rel: str) -> Path:
    from huggingface_hub import hf_hub_download

    reason = hub_unavailable()
    if reason:
        raise DataError(f"{source.id}@{source.commit}: {rel} is not in the local cache ({reason}); {OFFLINE_HINT}")
    try:
        return Path(hf_hub_download(source.id, rel, repo_type=REPO_TYPE, revision=source.commit))
    except Exception as error:  # as in remote_listing
        raise DataError(f"{source.id}@{source.commit}: cannot download {rel} ({_first_line(error)})") from None


def _record_ref(source: DataSource) -> None:
    """`refs/<revision>` -> commit in the cache (a download by commit writes none), so offline runs find it."""
    if source.revision is not None:
        write_ref(source.id, REPO_TYPE, source.revision, source.commit)


def _first_line(error: BaseException) -> str:
    return (str(error).strip() or type(error).__name__).splitlines()[0]
