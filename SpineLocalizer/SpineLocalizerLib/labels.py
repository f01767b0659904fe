"""Label codes used in every label map the project writes or reads.

Vertebrae use the VerSe codes (T8=15, T9=16 ... T12=19, L1=20 ... L5=24, L6=25, S1/sacrum=26), as in
`shared/data/real`. A disc takes 100 + the code of the vertebra *above* it (the convention SPINEPS uses for
intervertebral discs), so T12-L1 = 119, L4-L5 = 123, and the lumbosacral disc is 100 + the last lumbar code
(L4-S1 = 123, L5-S1 = 124, L6-S1 = 125). The name carries the anatomy; the code stays unique in one image.
Other structures have fixed small codes listed in STRUCTURE_CODES.
"""

from __future__ import annotations

import numpy as np

VERTEBRA_CODES: dict[str, int] = {
    "T8": 15,
    "T9": 16,
    "T10": 17,
    "T11": 18,
    "T12": 19,
    "L1": 20,
    "L2": 21,
    "L3": 22,
    "L4": 23,
    "L5": 24,
    "L6": 25,
    "S1": 26,
}
CODE_TO_VERTEBRA: dict[int, str] = {v: k for k, v in VERTEBRA_CODES.items()}

DISC_CODE_OFFSET = 100
# Vertebrae whose discs below them count as lumbar levels (T12-L1 .. the lumbosacral disc, six lumbar included):
# the levels a lumbar protocol plans and measures.
LUMBAR_REGION = ("T12", "L1", "L2", "L3", "L4", "L5", "L6")

STRUCTURE_CODES: dict[str, int] = {
    "dural_sac": 1,
    "epidural_fat": 2,
    "nerve_root": 3,
    "pedicle": 4,
    "lamina": 5,
    "spinous_process": 6,
    "transverse_process": 7,
    "superior_articular_process": 8,
    "inferior_articular_process": 9,
    "facet_joint": 10,
    "herniation": 11,
    "spinal_cord": 12,
    "ligamentum_flavum": 13,
    "psoas_left": 40,
    "psoas_right": 41,
    "paraspinal_left": 42,
    "paraspinal_right": 43,
    "muscle_other": 44,
    "aorta": 45,
    "vena_cava": 46,
    "subcutaneous_fat": 50,
    "visceral_fat": 51,
    "viscera": 52,
    "skin": 53,
}


def vertebra_sequence(lumbar_count: int, top: str = "T8") -> list[str]:
    """Vertebra names from `top` down to the sacrum for 4, 5 or 6 lumbar vertebrae."""
    if lumbar_count not in (4, 5, 6):
        raise ValueError(f"lumbar_count must be 4, 5 or 6, got {lumbar_count!r}")
    thoracic = ["T8", "T9", "T10", "T11", "T12"]
    if top not in thoracic:
        raise ValueError(f"top vertebra must be one of {thoracic}, got {top!r}")
    return thoracic[thoracic.index(top) :] + [f"L{i}" for i in range(1, lumbar_count + 1)] + ["S1"]


def disc_name(upper: str, lower: str) -> str:
    return f"{upper}-{lower}"


def is_disc_name(name: str) -> bool:
    """True for a disc between two neighbouring vertebrae as this project names it ("L4-L5", "L5-S1", "T12-L1")."""
    parts = str(name).split("-")
    if len(parts) != 2 or not all(p in VERTEBRA_CODES for p in parts):
        return False
    step = VERTEBRA_CODES[parts[1]] - VERTEBRA_CODES[parts[0]]
    # The lumbosacral disc is named after the last lumbar vertebra whatever the count (L4-S1, L5-S1, L6-S1).
    return step == 1 or (parts[1] == "S1" and parts[0] in ("L4", "L5", "L6"))


def disc_code(upper: str) -> int:
    return DISC_CODE_OFFSET + VERTEBRA_CODES[upper]


def is_disc_code(value: int) -> bool:
    return DISC_CODE_OFFSET + 15 <= value <= DISC_CODE_OFFSET + 25


def codes_present(array: np.ndarray) -> list[int]:
    """The non-zero values of a label map, ascending. Label maps are mostly background: uniquing only the labelled
    voxels is ~5x faster than uniquing the whole array (0.02 -> 0.004 s on a 2 mm localizer grid)."""
    return [int(v) for v in np.unique(array[array != 0])]


def is_vertebra_code(value: int) -> bool:
    return value in CODE_TO_VERTEBRA


def all_labels(lumbar_count: int) -> dict[str, int]:
    """Structure name -> code for a phantom with the given lumbar count (the `labels` table of truth.json)."""
    table = dict(STRUCTURE_CODES)
    names = vertebra_sequence(lumbar_count)
    for name in names:
        table[name] = VERTEBRA_CODES[name]
    for upper, lower in zip(names[:-1], names[1:]):
        table[disc_name(upper, lower)] = disc_code(upper)
    return table
