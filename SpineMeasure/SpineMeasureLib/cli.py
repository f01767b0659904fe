"""`spine-measure`: measurements from label maps or reader landmarks (not yet available)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("spine-measure: not yet available in this version (see the measurement issue).", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
