"""Where `--init_from` / `--init_discriminator_from` take G and D from: a model file, or an original
FaceDancer checkpoint folder (`gen/gen.json` + `gen_N.h5`, `dis/dis.json` + `dis_N.h5`, as the original's
`train.py` writes them under `chkp_dir/log_name/`), so training continues where the original stopped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from facedancer.errors import FaceDancerError


@dataclass(frozen=True)
class ModelSource:
    """A file `facedancer.models.load` reads, and its weights file for a checkpoint's `*.json`."""

    path: Path
    weights: Path | None = None


def _numbered(folder: Path, name: str) -> dict[int, Path]:
    pattern = re.compile(rf"^{re.escape(name)}_(\d+)\.h5$")
    return {int(m.group(1)): p for p in folder.iterdir() if (m := pattern.match(p.name))}


def _checkpoint_folders(folder: Path) -> tuple[Path, Path]:
    """(gen folder, dis folder) of an original checkpoint given as its run folder or as its gen/ folder."""
    if (folder / "gen" / "gen.json").is_file():
        return folder / "gen", folder / "dis"
    if (folder / "gen.json").is_file():
        return folder, folder.parent / "dis"
    raise FaceDancerError(
        f"--init_from {folder} is a folder but not an original FaceDancer checkpoint: expected "
        f"{folder}/gen/gen.json (the original's chkp_dir/log_name folder) or {folder}/gen.json"
    )


def original_checkpoint(folder: str | Path) -> tuple[ModelSource, ModelSource | None]:
    """G from the newest `gen_N.h5` of an original checkpoint folder, and D from the matching `dis_N.h5`
    (None when the folder has no `dis/`)."""
    gen_dir, dis_dir = _checkpoint_folders(Path(folder))
    generators = _numbered(gen_dir, "gen")
    if not generators:
        raise FaceDancerError(f"{gen_dir} holds gen.json but no gen_N.h5 weights")
    number = max(generators)
    generator = ModelSource(gen_dir / "gen.json", generators[number])
    if not (dis_dir / "dis.json").is_file():
        return generator, None
    discriminators = _numbered(dis_dir, "dis")
    if number not in discriminators:
        have = ", ".join(p.name for _, p in sorted(discriminators.items())) or "none"
        raise FaceDancerError(
            f"{dis_dir} has no dis_{number}.h5 matching {generators[number].name} (has: {have}); "
            "pass the discriminator with --init_discriminator_from"
        )
    return generator, ModelSource(dis_dir / "dis.json", discriminators[number])


def init_sources(
    init_from: str | Path | None, init_discriminator_from: str | Path | None
) -> tuple[ModelSource | None, ModelSource | None]:
    """(G source, D source) for the trainer; None: build that network fresh. An explicit
    --init_discriminator_from wins over the checkpoint folder's dis/."""
    generator = discriminator = None
    if init_from:
        path = Path(init_from)
        if not path.exists():
            raise FaceDancerError(f"--init_from {path} does not exist")
        if path.is_dir():
            generator, discriminator = original_checkpoint(path)
        else:
            generator = ModelSource(path)
    if init_discriminator_from:
        path = Path(init_discriminator_from)
        if not path.is_file():
            raise FaceDancerError(f"--init_discriminator_from {path} is not a file")
        discriminator = ModelSource(path)
    return generator, discriminator


def original_iteration(folder: str | Path, generator_weights: Path) -> int | None:
    """The iteration the original's `state/N.json` beside a checkpoint folder records for `gen_N.h5`
    (None when absent): its learning-rate schedule had decayed to lr · decay^(iteration / 100k) there."""
    gen_dir, _ = _checkpoint_folders(Path(folder))
    number = generator_weights.stem.rsplit("_", 1)[-1]
    try:
        return int(json.loads((gen_dir.parent / "state" / f"{number}.json").read_text())["iteration"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def continued_learning_rate(
    lr: float, decay: float, decay_steps: int, folder: str | Path, generator_weights: Path
) -> tuple[float, int | None]:
    """(learning rate to start from, iteration) when continuing an original checkpoint: the original's `--load`
    builds its schedule from lr · decay^(iteration / decay_steps); without a state file, lr itself."""
    iteration = original_iteration(folder, generator_weights)
    if not iteration:
        return lr, iteration
    return lr * decay ** (iteration / decay_steps), iteration
