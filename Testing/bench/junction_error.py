"""How often a level classifier misreads the lumbar count on a real source it was never trained on: the
measurement behind `sequence_matching.JUNCTION_ERROR_UNSEEN`.

    PYTHONPATH=Testing/bench .venv/bin/python Testing/bench/junction_error.py SOURCE MODELS

SOURCE: vertebrae_t2 (levels known: five lumbar vertebrae, bodies T11..L5) or vertebrae_mixed (read as five
lumbar, the lowest body S1; scripts/real_user_data.py; vb1_17 left out). MODELS: a model folder whose level
classifier never saw SOURCE. The count is read as the images alone give it (the cap lifted, priors kept), so a
reading other than five is the classifier's call at the junction disc against the prior. Cases where the
junction is not in view are not counted.
"""

from __future__ import annotations

import sys
from pathlib import Path

from real_sources import REAL_DIR, _plan
from SpineLocalizerLib.networks import sequence_matching

LEFT_OUT = ("vb1_17",)  # lowest body not told L5 from S1 (scripts/real_user_data.py)


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    source, models = sys.argv[1], Path(sys.argv[2])
    sequence_matching.COUNT_EVIDENCE_CAP = float("inf")
    rows = []
    for image in sorted((REAL_DIR / source).glob("*_image.nii.gz")):
        case = image.name.split("_image")[0]
        if case in LEFT_OUT:
            continue
        plan, _, message = _plan(image, None, models)
        naming = (plan or {}).get("naming", {})
        if plan is None or not naming.get("junction_in_view"):
            print(f"  {case}: not counted ({message if plan is None else 'junction not in view'})")
            continue
        count = int(plan["lumbar_count"])
        rows.append(count != 5)
        print(f"  {case}: read {count} ({naming.get('count_basis')}, margin {naming.get('count_margin')})")
    print(f"{source} with {models}: count misread in {sum(rows)} of {len(rows)} ({sum(rows) / max(len(rows), 1):.2f})")


if __name__ == "__main__":
    main()
