"""Wait until a URL answers 200, or give up with a hint: `make compose-up` uses it.

Usage: python scripts/wait_for_url.py URL [--timeout SECONDS] [--hint "commands to look at"]
Standard library only, so it runs before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request


def answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - a local URL
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--hint", default="")
    args = parser.parse_args()

    print(f"waiting for {args.url} (the first start trains the default model: about a minute)")
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if answers_ok(args.url):
            return 0
        time.sleep(2)
    print(f"{args.url} did not answer within {args.timeout:.0f} s; look at: {args.hint}",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
