"""Settings for the whole suite.

Component builds (components/build.py, gdk's custom build) ship wheelhouses of ~100 MB per device platform by
default; tests build without them unless they ask (``COMPONENT_WHEELHOUSE`` set by the test itself), so a build
under test takes a second, not a download. tests/integration/test_component_install.py installs from a real one.
"""

from __future__ import annotations

import os

os.environ.setdefault("COMPONENT_WHEELHOUSE", "none")
