# The two commands of the README: `make demo` and `make test`. Both set themselves up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup broker rtsp-server console-parts test lint typecheck unit edge-unit demo component clean

# The integration tests need a real MQTT broker. Install mosquitto with apt when it is missing and we may;
# otherwise say so: the broker tests then skip (and fail under CI=true, where a skipped broker test would hide a gap).
broker:
	@if [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing mosquitto (apt-get)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null 2>&1 || \
		{ apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null; }; \
	else echo "mosquitto is not installed and cannot be installed here (needs root and apt-get): broker tests will skip"; fi

# The RTSP tests need a real RTSP server: GStreamer's gst-rtsp-server through Debian's python3-gi, installed with apt like
# mosquitto; otherwise they skip (fail under CI=true).
RTSP_PACKAGES := python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
rtsp-server:
	@if /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" >/dev/null 2>&1 && \
		[ -n "$$(ls /usr/lib/*/gstreamer-1.0/libgstrtp.so 2>/dev/null)" ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing gst-rtsp-server (apt-get)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(RTSP_PACKAGES) >/dev/null 2>&1 || \
		{ apt-get update -qq >/dev/null 2>&1 && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(RTSP_PACKAGES) >/dev/null; }; \
	else echo "gst-rtsp-server is not installed and cannot be installed here (needs root and apt-get): RTSP tests will skip"; fi

# The console tests need a real browser and a real PostgreSQL: Debian's chromium (driven by Playwright, whose own
# browsers are never downloaded) and postgresql, installed with apt like mosquitto; otherwise they skip (fail under CI=true).
console-parts:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -z "$$missing" ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing$$missing (apt-get)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null 2>&1 || \
		{ apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }; \
	else echo "$$missing not installed and cannot be installed here (needs root and apt-get): console tests will skip"; fi

# Re-install only when the dependency list changes; the package itself is installed editable.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --progress-bar off -e ".[dev]"
	touch $(STAMP)

# The real gdk CLI (1.6.2, Apache-2.0, not on PyPI) into the same venv, from ../shared/vendor when that file is there
# (also into a venv made before this rule existed); without it the gdk tests skip, and fail under CI=true.
GDK_TARBALL := ../shared/vendor/aws-greengrass-gdk-cli.tar.gz
GDK         := $(if $(wildcard $(GDK_TARBALL)),$(VENV)/bin/gdk)

setup: $(STAMP) $(GDK)
	@test -n "$(GDK)" || echo "$(GDK_TARBALL) is absent: the gdk CLI is not installed and the gdk tests skip"

$(VENV)/bin/gdk: $(STAMP) $(GDK_TARBALL)
	$(PY) -m pip install --quiet --progress-bar off $(GDK_TARBALL)
	touch $@

lint: setup
	$(VENV)/bin/ruff check .

typecheck: setup
	$(VENV)/bin/mypy

unit: setup
	$(PY) -m pytest tests/unit

# pytest exits 5 when it collects no test: make treats that as a failure, so an empty run never passes.
test: lint typecheck broker rtsp-server console-parts
	$(PY) -m pytest
	$(MAKE) --no-print-directory edge-unit

# The device's own environment, beside the dev one: the edge extra alone (newest onnxruntime, numpy 2, no MXNet),
# running the unit tests that need nothing else. It proves the device path does not lean on the cloud side's pins.
EDGE_VENV  := .venv-edge
EDGE_TESTS := tests/unit/test_edge_onnx.py tests/unit/test_edge_config.py tests/unit/test_edge_health.py \
              tests/unit/test_edge_pipeline.py tests/unit/test_greengrass.py tests/unit/test_snapshots.py \
              tests/unit/test_annotate.py tests/unit/test_recommended_thresholds.py \
              tests/unit/test_cloud_cli_edge_install.py tests/unit/test_edge_cli_help.py \
              tests/unit/test_check_config_paths.py tests/unit/test_truncated_image.py \
              tests/unit/test_events.py \
              tests/unit/test_samples.py \
              tests/unit/test_engines.py tests/unit/test_engine_choice.py

$(EDGE_VENV)/.installed: pyproject.toml
	rm -rf $(EDGE_VENV)
	$(PYTHON) -m venv $(EDGE_VENV)
	$(EDGE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(EDGE_VENV)/bin/python -m pip install --quiet --progress-bar off -e ".[edge,openvino]" "numpy>=2" \
		pytest pytest-timeout pytest-mock hypothesis
	touch $@

edge-unit: $(EDGE_VENV)/.installed
	$(EDGE_VENV)/bin/python -c "import importlib.util, numpy, onnxruntime, openvino; \
		assert importlib.util.find_spec('mxnet') is None, 'mxnet must not be in the edge env'; \
		print('edge env: numpy', numpy.__version__, '| onnxruntime', onnxruntime.__version__, '| openvino', openvino.__version__, '| no mxnet')"
	$(EDGE_VENV)/bin/python -m pytest -p no:cacheprovider $(EDGE_TESTS)

# The README's first command: set up, make a synthetic video of storage boxes, run the daemon on it with the demo
# model. Detections go to stdout as JSON lines, one per frame; the closing summary is the last line on stderr.
DEMO := build/make-demo
demo: setup
	@test -f models/demo/model.json || { echo "models/demo/ is missing: models/demo/README.md says how to rebuild it"; exit 2; }
	$(VENV)/bin/cloud-training synth --out $(DEMO)/synth --images 0 --seed 1 --video $(DEMO)/boxes.mp4 --frames 150 --force
	$(VENV)/bin/edge-runtime run --model models/demo --source $(DEMO)/boxes.mp4

# The three Greengrass components into one greengrass-build/ here: the inference component (wheel + lifecycle
# scripts zipped), the wheelhouse component (its wheels) and, from models/demo/, the model component. gdk builds the
# inference component at the root (gdk component build), the others in components/<name>/: components/README.md.
# COMPONENT_ENGINES=openvino adds OpenVINO's wheels to the wheelhouse (pinned by components/locks/openvino/).
component: setup
	$(PY) components/build.py

# The inference component with the real gdk CLI, built and published from the root; components/publish.py first
# refuses (exit 2) a version that exists or an artifact key holding other bytes, which gdk would overwrite.
# PUBLISH_ARGS="--bucket B --region R" passes gdk's options on.
.PHONY: publish
publish: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/gdk component build
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) components/publish.py $(PUBLISH_ARGS)

clean:
	rm -rf $(VENV) $(EDGE_VENV) .mypy_cache .pytest_cache .ruff_cache greengrass-build components/*/greengrass-build \
		build *.egg-info

# Proven on the device OSes (tests/device_os/README.md): the wheel with the edge extra installed and run in a fresh
# Debian 13 "trixie" root (Python 3.13) built by mmdebstrap from this machine's mirror, natively (amd64) and under
# qemu-user (arm64), its detections compared with this machine's. Needs root: elsewhere SKIP (a failure under CI=true).
.PHONY: device-os device-os-arm64 nucleus-sim-arm64
device-os: setup
	bash tests/device_os/run.sh --arch amd64

device-os-arm64: setup
	bash tests/device_os/run.sh --arch arm64

# A simulated nucleus run in the arm64 root (qemu): the component built with the cp313-aarch64 wheelhouse, Install as
# ggc_user from it, Run against the test IPC server, SIGTERM, the stop timed (< 5 s). x86_64: make test's
# tests/integration/test_nucleus_simulation.py. Needs root like device-os: elsewhere SKIP (a failure under CI=true).
nucleus-sim-arm64: setup
	bash tests/device_os/run.sh --arch arm64 --nucleus-sim

# The component installed as a device with no network installs it (tests/device_os/README.md): the wheelhouse built
# for the root's Python, components/install.sh in a network namespace with only lo, then detect and run from its venv,
# compared with this machine's. Debian 12 (Python 3.11) and 13 (3.13), amd64; device-os-pythons: Python 3.10 and 3.12
# (this machine's own builds of them in a Debian 12 root: Debian ships neither). A nucleus that states its Python
# (platformOverride python=cp313) and a wheelhouse of two Pythons: nucleus-sim-python-arm64.
.PHONY: device-os-offline device-os-pythons device-os-openvino nucleus-sim-python-arm64
device-os-offline: setup
	bash tests/device_os/run.sh --offline --suite bookworm
	bash tests/device_os/run.sh --offline --suite trixie

device-os-pythons: setup
	bash tests/device_os/run.sh --offline --suite bookworm --python 3.10
	bash tests/device_os/run.sh --offline --suite bookworm --python 3.12

# The optional OpenVINO engine from the wheelhouse (COMPONENT_ENGINES=openvino), offline in the Debian 13 root: its
# detections (--backend openvino) and the default ones compared with this machine's.
device-os-openvino: setup
	COMPONENT_ENGINES=openvino bash tests/device_os/run.sh --offline --suite trixie

nucleus-sim-python-arm64: setup
	bash tests/device_os/run.sh --arch arm64 --nucleus-sim --wheelhouse cp313-aarch64,cp311-aarch64 \
		--platform python=cp313
