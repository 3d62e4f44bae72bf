"""Settings for the whole suite.

Component builds (components/build.py, gdk's custom build) ship wheelhouses of ~100 MB per device platform by
default; tests build without them unless they ask (``COMPONENT_WHEELHOUSE`` set by the test itself), so a build
under test takes a second, not a download. tests/integration/test_component_install.py installs from a real one.
"""

from __future__ import annotations

import os

os.environ.setdefault("COMPONENT_WHEELHOUSE", "none")
# The daemon's model.backend auto measures every engine on its first start in a state_dir (up to 30 s); the suite's
# daemons each get a fresh state_dir, so they run ONNX Runtime fp32 unmeasured, as before. tests/unit/
# test_engine_choice.py tests the measurement (its configs set model.auto explicitly).
os.environ.setdefault("EDGE_RUNTIME_MODEL__AUTO__MEASURE", "false")
