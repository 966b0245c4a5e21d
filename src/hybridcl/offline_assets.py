"""The offline config's assets: the mined corpus and the stand-in base, built once, where the config names them,
when they are missing (`offline.build`)."""

from __future__ import annotations

import logging
from pathlib import Path

from hybridcl.config import Config

logger = logging.getLogger(__name__)


# Per offline.base_arch: where the repository ships its tiny stand-in, and how long building that again takes.
SHIPPED_STAND_INS = {
    "t5": ("models/stand-in-base", "about an hour"),
    "causal": ("models/stand-in-causal", "about 40 minutes"),
}


def build_offline_assets(cfg: Config) -> None:
    """The mined corpus and the stand-in base of an offline config, built once when missing. The
    stand-in goes to model.name, or to model.tokenizer when the model is random-init (its tokenizer)."""
    stand_in = cfg.model.tokenizer if cfg.model.random_init and cfg.model.tokenizer else cfg.model.name
    corpus, base = Path(cfg.data.source), Path(stand_in)
    if not (corpus / "summary.json").is_file():
        from hybridcl.data.mine import build_corpus

        logger.info(
            f"first use: mining the offline corpus into {corpus} (one time; about 2 minutes on 2 CPU cores, "
            "npm install of the JavaScript sources included)"
        )
        build_corpus(out_dir=corpus, languages=list(cfg.data.languages), cache_dir=cfg.data.cache_dir)
    if not (base / "config.json").is_file():
        from hybridcl.model.pretrain import build_stand_in_base

        arch = cfg.offline.base_arch
        shipped, build_time = SHIPPED_STAND_INS[arch]
        logger.info(
            f"no base at {base}: pre-training the {cfg.offline.base_size} {arch} stand-in base there (one time; "
            f"{build_time} on 2 CPU cores for the tiny size, which the repository ships as {shipped}; killed, it "
            "continues where it stopped)"
        )
        build_stand_in_base(corpus, base, size=cfg.offline.base_size, arch=arch)
