"""Classes of the axial structure network (SpineMeasure's automatic measurements on real images) and how they map
to and from the project's label codes (labels.py).

Sides are not classes: a left-right flip is one of the training augmentations, and the measurements split left
from right by the plane's own left axis (the psoas by the side of the midline it lies on). Vertebral bodies and
discs are one class each; their level comes from the plan the slices belong to (`to_project_codes`).
"""

from __future__ import annotations

import numpy as np

from ..labels import STRUCTURE_CODES, is_disc_code, is_vertebra_code

STRUCTURE_CLASSES = (
    "background",
    "vertebral body",
    "disc",
    "dural sac",  # with the cord and the roots inside it
    "canal fat and roots",  # epidural fat and nerve roots: the rest of the canal contents
    "herniation",
    "superior articular process",
    "inferior articular process",
    "facet joint",
    "ligamentum flavum",
    "posterior bone",  # pedicles, laminae, spinous and transverse processes
    "psoas",
    "paraspinal muscle",
)
N_STRUCTURE_CLASSES = len(STRUCTURE_CLASSES)
CLASS_INDEX = {name: i for i, name in enumerate(STRUCTURE_CLASSES)}

# Project structure code -> class (vertebra and disc codes are handled by range).
_CODE_TO_CLASS = {
    STRUCTURE_CODES["dural_sac"]: CLASS_INDEX["dural sac"],
    STRUCTURE_CODES["spinal_cord"]: CLASS_INDEX["dural sac"],
    STRUCTURE_CODES["epidural_fat"]: CLASS_INDEX["canal fat and roots"],
    STRUCTURE_CODES["nerve_root"]: CLASS_INDEX["canal fat and roots"],
    STRUCTURE_CODES["herniation"]: CLASS_INDEX["herniation"],
    STRUCTURE_CODES["superior_articular_process"]: CLASS_INDEX["superior articular process"],
    STRUCTURE_CODES["inferior_articular_process"]: CLASS_INDEX["inferior articular process"],
    STRUCTURE_CODES["facet_joint"]: CLASS_INDEX["facet joint"],
    STRUCTURE_CODES["ligamentum_flavum"]: CLASS_INDEX["ligamentum flavum"],
    STRUCTURE_CODES["pedicle"]: CLASS_INDEX["posterior bone"],
    STRUCTURE_CODES["lamina"]: CLASS_INDEX["posterior bone"],
    STRUCTURE_CODES["spinous_process"]: CLASS_INDEX["posterior bone"],
    STRUCTURE_CODES["transverse_process"]: CLASS_INDEX["posterior bone"],
    STRUCTURE_CODES["psoas_left"]: CLASS_INDEX["psoas"],
    STRUCTURE_CODES["psoas_right"]: CLASS_INDEX["psoas"],
    STRUCTURE_CODES["paraspinal_left"]: CLASS_INDEX["paraspinal muscle"],
    STRUCTURE_CODES["paraspinal_right"]: CLASS_INDEX["paraspinal muscle"],
}
_LOOKUP = np.zeros(256, dtype=np.uint8)
for _code, _cls in _CODE_TO_CLASS.items():
    _LOOKUP[_code] = _cls
for _code in range(256):
    if is_vertebra_code(_code):
        _LOOKUP[_code] = CLASS_INDEX["vertebral body"]
    elif is_disc_code(_code):
        _LOOKUP[_code] = CLASS_INDEX["disc"]

# Class -> project code where the class is one structure (sided classes and levels are resolved by geometry).
_CLASS_TO_CODE = {
    CLASS_INDEX["dural sac"]: STRUCTURE_CODES["dural_sac"],
    CLASS_INDEX["canal fat and roots"]: STRUCTURE_CODES["epidural_fat"],
    CLASS_INDEX["herniation"]: STRUCTURE_CODES["herniation"],
    CLASS_INDEX["superior articular process"]: STRUCTURE_CODES["superior_articular_process"],
    CLASS_INDEX["inferior articular process"]: STRUCTURE_CODES["inferior_articular_process"],
    CLASS_INDEX["facet joint"]: STRUCTURE_CODES["facet_joint"],
    CLASS_INDEX["ligamentum flavum"]: STRUCTURE_CODES["ligamentum_flavum"],
    CLASS_INDEX["posterior bone"]: STRUCTURE_CODES["lamina"],
}


def classes_of(labels: np.ndarray) -> np.ndarray:
    """Structure classes (uint8) of a label map in the project codes (< 256)."""
    return _LOOKUP[np.asarray(labels, dtype=np.int64).clip(0, 255)]


def to_project_codes(
    classes: np.ndarray, is_left: np.ndarray, disc_code: int | None, vertebra_code: int | None
) -> np.ndarray:
    """Project label codes (uint8) of network classes. `is_left` (same shape) says which side of the midline each
    pixel lies on (psoas and paraspinal muscles take sided codes); discs and bodies take the given level's codes
    (background where no level is given, never a made-up level)."""
    out = np.zeros(classes.shape, dtype=np.uint8)
    for cls, code in _CLASS_TO_CODE.items():
        out[classes == cls] = code
    for cls, (left, right) in (
        (CLASS_INDEX["psoas"], ("psoas_left", "psoas_right")),
        (CLASS_INDEX["paraspinal muscle"], ("paraspinal_left", "paraspinal_right")),
    ):
        m = classes == cls
        out[m & is_left] = STRUCTURE_CODES[left]
        out[m & ~is_left] = STRUCTURE_CODES[right]
    if disc_code is not None:
        out[classes == CLASS_INDEX["disc"]] = disc_code
    if vertebra_code is not None:
        out[classes == CLASS_INDEX["vertebral body"]] = vertebra_code
    return out
