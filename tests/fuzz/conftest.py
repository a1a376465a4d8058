"""Hypothesis keeps a cache (``.hypothesis/``) wherever pytest runs; put it in the temp dir instead of the tree."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis.configuration import set_hypothesis_home_dir

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "homeshots-hypothesis")
