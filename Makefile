# edge-digits: `make demo` runs the main job, `make test` runs the tests.
# Each creates (once) the virtual environment .venv with every extra installed,
# and fetches MNIST into .data/ (verified; offline-capable, see edge_digits/data.py).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export EDGE_DIGITS_DATA ?= $(CURDIR)/.data
export TF_CPP_MIN_LOG_LEVEL ?= 2
DEMO_OUT ?= out/demo

# Debian packages: the Cortex-M toolchain and newlib, QEMU for the boards, clang + libFuzzer for the
# protocol fuzzer, valgrind for instruction counts, wrk for the HTTP load test (tools/loadtest.py),
# PostgreSQL for the test of `edge-digits tune` workers sharing one study, systemd for `systemd-analyze verify`
# of the unit `edge-digits service-unit` writes; the Linux cross compilers for 64-bit and 32-bit ARM (with
# their static libc) and qemu-user, to run the native engine as a Pi would (tests/test_native_arm.py);
# debootstrap for the arm64 Debian root in which `make test-arm64` installs the wheel as a Pi user would.
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm clang libclang-rt-14-dev valgrind wrk \
                postgresql systemd mosquitto chromium chromium-driver \
                gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross libc6-dev-armhf-cross \
                qemu-user-static debootstrap
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup setup-system data demo test test-fast test-arm64 lint typecheck clean

setup: $(STAMP) setup-system

setup-system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[train,micro,dev,tune,onnx,mqtt]"
	touch $@

data: setup
	$(BIN)/edge-digits data fetch

demo: data
	$(BIN)/edge-digits data info
	$(BIN)/edge-digits data show --out $(DEMO_OUT)/mnist-grid.png
	$(BIN)/edge-digits run --max-frames 60 --log $(DEMO_OUT)/run.csv --save-video $(DEMO_OUT)/annotated.avi

test: data
	$(BIN)/python -m pytest -q

# The inner loop: everything but the tests marked slow (training, searches, QEMU, all 10,000 test images).
test-fast: data
	$(BIN)/python -m pytest -q -m "not slow"

# The wheel installed with pip in an arm64 Debian root and run under qemu-user as a Pi 4 (Cortex-A72) and a
# Pi 5 (Cortex-A76): eval, eval-photos, run and bench, compared with x86 (tools/test_arm64.sh). Needs root;
# slow (about 3 minutes; 7 the first time, which builds the cached root); not in `make test` or CI.
test-arm64: data
	bash tools/test_arm64.sh

# Lint and import order (ruff), then the import rules between stages (import-linter); both configured in
# pyproject.toml. CI runs lint and typecheck before the tests.
lint: setup
	$(BIN)/ruff check edge_digits tests tools
	$(BIN)/lint-imports

# Static types: mypy --strict on the package (settings in pyproject.toml).
typecheck: setup
	$(BIN)/mypy edge_digits

clean:
	rm -rf $(VENV) out .pytest_cache
