"""hwnas-score: zero-cost proxies for a list or a sample of architectures, into scores.csv.

Compose the config -> instantiate the space, the selection and the proxies (configs/proxy, one
objective each) -> one library call (``nas.scoring.score_architectures``: resumable, one row per
architecture flushed as it is scored) -> scores.csv, seconds.csv, failures.csv, sources.json.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from nas import Objective, SearchSpace
from nas.cli import CONFIG_DIR, config_options
from nas.cli._explain import explained
from nas.cli._options import SCORE, check_options
from nas.scoring import ScoreRow, score_architectures

log = logging.getLogger("hwnas.score")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="score")
@explained
def _run(cfg: DictConfig) -> None:
    score_run(cfg, Path(HydraConfig.get().runtime.output_dir))


def score_run(cfg: DictConfig, out_dir: Path) -> tuple[SearchSpace, list[ScoreRow]]:
    """What ``hwnas-score`` does with a composed config, into ``out_dir`` (benchmarks call this)."""
    check_options(cfg, SCORE)
    torch.set_num_threads(cfg.torch_threads)
    space: SearchSpace = instantiate(cfg.space.instance)
    archs = instantiate(cfg.selection)(space, cfg.n_archs, np.random.default_rng(cfg.seed))
    proxies = proxies_of(cfg)
    log.info("scoring %d %s architectures with %s into %s", len(archs), space.name, ", ".join(proxies), out_dir)
    rows = score_architectures(space, archs, proxies, out_dir, progress=cfg.progress)
    for name in proxies:
        scored = [r.seconds[name] for r in rows if r.values[name] is not None]
        log.info(
            "%s: %d of %d scored, %.3f s per architecture", name, len(scored), len(rows), np.mean(scored or [np.nan])
        )
    return space, rows


def proxies_of(cfg: DictConfig) -> dict[str, Objective]:
    """The configured proxies (``cfg.proxy``: configs/proxy), by name."""
    return {name: instantiate(node) for name, node in cfg.proxy.items()}


def check_proxy_overrides(argv: list[str]) -> None:
    """Refuse an unknown proxy before Hydra composes (its error would not list the options)."""
    known = config_options("proxy")
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+~") != "proxy" or not value:
            continue
        names = [n.strip() for n in value.strip("[]").split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SystemExit(
                f"hwnas-score: unknown proxy {', '.join(map(repr, unknown))}; available: {', '.join(known)}"
            )


def main() -> None:
    check_proxy_overrides(sys.argv[1:])
    _run()


if __name__ == "__main__":
    main()
