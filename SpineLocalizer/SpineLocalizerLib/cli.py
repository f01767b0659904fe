"""`spine-localizer`: scan planning from localizer images."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("spine-localizer: not yet available in this version (see the planning issue).", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
