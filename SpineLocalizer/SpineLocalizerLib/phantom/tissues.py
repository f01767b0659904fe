"""Tissue classes of the phantom and their MR-like signal in T1- and T2-weighted contrast.

Labels say *what structure* a voxel belongs to; tissues say *what it looks like*. A vertebral body is one label
but two tissues (cortex and marrow), a disc is one label but annulus and nucleus. Signal values are relative
(0..1) and follow the usual appearance of fast spin echo lumbar MRI: on T2, CSF, nucleus and fat bright, annulus,
cortex and ligaments dark; on T1, marrow and fat bright, CSF dark.
"""

from __future__ import annotations

import numpy as np

AIR, SKIN, FAT, MUSCLE, VISCERAL_FAT, VISCERA, MARROW, CORTEX = 0, 1, 2, 3, 4, 5, 6, 7
ANNULUS, NUCLEUS, CSF, EPIDURAL_FAT, NERVE, JOINT, HERNIATION, LIGAMENT = 8, 9, 10, 11, 12, 13, 14, 15
CORD, BLOOD, NUCLEUS_DEGENERATE = 16, 17, 18
N_TISSUES = 19

_T2 = {
    AIR: 0.0,
    SKIN: 0.35,
    FAT: 0.78,
    MUSCLE: 0.2,
    VISCERAL_FAT: 0.72,
    VISCERA: 0.45,
    MARROW: 0.36,
    CORTEX: 0.04,
    ANNULUS: 0.16,
    NUCLEUS: 0.85,
    CSF: 1.0,
    EPIDURAL_FAT: 0.7,
    NERVE: 0.28,
    JOINT: 0.75,
    HERNIATION: 0.22,
    LIGAMENT: 0.08,
    CORD: 0.42,
    BLOOD: 0.05,
    NUCLEUS_DEGENERATE: 0.3,
}
_T1 = {
    AIR: 0.0,
    SKIN: 0.45,
    FAT: 0.95,
    MUSCLE: 0.32,
    VISCERAL_FAT: 0.9,
    VISCERA: 0.38,
    MARROW: 0.68,
    CORTEX: 0.05,
    ANNULUS: 0.28,
    NUCLEUS: 0.36,
    CSF: 0.12,
    EPIDURAL_FAT: 0.9,
    NERVE: 0.34,
    JOINT: 0.15,
    HERNIATION: 0.3,
    LIGAMENT: 0.1,
    CORD: 0.4,
    BLOOD: 0.06,
    NUCLEUS_DEGENERATE: 0.3,
}


def signal_table(contrast: str) -> np.ndarray:
    """Array indexed by tissue id giving the relative signal for `contrast` ('t1' or 't2')."""
    table = {"t1": _T1, "t2": _T2}.get(contrast)
    if table is None:
        raise ValueError(f"contrast must be 't1' or 't2' (got {contrast!r})")
    out = np.zeros(N_TISSUES, dtype=np.float32)
    for k, val in table.items():
        out[k] = val
    return out
