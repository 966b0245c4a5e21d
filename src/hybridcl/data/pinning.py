"""What pins the CodeSearchNet a run reads: a DataSource names the form, the revision's commit (hub) or
a content fingerprint (local files), and every file a task's splits read (hybridcl.data.source resolves
one; the results and sources.json keep it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DataSource:
    kind: str  # "hub" | "local" (a data.hub_root folder) | "corpus" (data.source is a local path)
    id: str  # hub id, or the root / source path
    revision: str | None  # hub: the revision read (under data.hub_revision=auto, the one it chose), else None
    commit: str | None  # hub: the 40-hex commit that revision resolved to, else None
    fingerprint: str | None  # local kinds: "sha256:<hex>" over the files' names, sizes and content hashes
    form: str  # "parquet-conversion" | "push-to-hub-parquet" | "release-zip" | "release-jsonl" | "corpus"
    files: tuple[tuple[str, int], ...]  # (path relative to the root, bytes) of every file the splits read
    cached: bool  # hub: all of `files` are in the local Hugging Face cache; local kinds: True
    download_bytes: int  # bytes still to download (hub), else 0

    def as_record(self) -> dict:
        """The source as plain JSON values, for a run's results."""
        record = asdict(self)
        record["files"] = [list(entry) for entry in self.files]
        return record

    @classmethod
    def from_record(cls, record: dict) -> DataSource:
        """The DataSource `as_record()` gave (as read back from JSON)."""
        return cls(**{**record, "files": tuple((path, size) for path, size in record["files"])})

    def identity(self) -> str:
        """What pins the bytes read: form @ commit (hub) or form @ content fingerprint (local)."""
        return f"{self.form}@{self.commit or self.fingerprint}"


def format_bytes(count: int) -> str:
    size, unit = float(count), "B"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            break
        size /= 1000
    return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
