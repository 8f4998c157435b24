"""The inference package imports only what is asked for: bench and tests use its image pipeline
without an app, so `import inference.preprocess` must not import Flask."""

from __future__ import annotations

import subprocess
import sys

from inference_support import REPO


def test_importing_the_image_pipeline_does_not_import_flask():
    check = ("import sys, inference.preprocess; "
             "print(sorted(m for m in ('flask', 'flask_smorest') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True,
                            text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
