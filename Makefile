# Two commands do everything on a fresh Linux machine with Python 3.11:
#   make demo   set up, then reconstruct the bundled example photo
#   make test   set up, then run the whole test suite
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT := out

.PHONY: setup sysdeps demo test test-fast bench wheel install-backend reproduce clean
.DEFAULT_GOAL := demo

$(STAMP): requirements.txt requirements-mediapipe.txt constraints.txt pyproject.toml setup.py
	@test -x $(PY) || command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: '$(PYTHON)' not found. MuNet needs Python 3.11 (Blender's bpy and MediaPipe 0.10.21 exist for 3.11 only): install it (Debian/Ubuntu: 'sudo apt install python3.11 python3.11-venv'; any OS: 'pyenv install 3.11' or 'uv python install 3.11'), or point make at it: 'make PYTHON=/path/to/python3.11 ...'" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "make: '$(PYTHON)' is Python $$($(PYTHON) -c 'import sys; print(*sys.version_info[:2], sep=".")'), MuNet needs 3.11: install it and run 'make PYTHON=python3.11 ...'" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==24.3.1
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-mediapipe.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# Blender's libraries (X11/GL) for bpy; installed only where missing, and only as root.
sysdeps:
	@sh scripts/install_system_deps.sh

setup: sysdeps $(STAMP)
	$(VENV)/bin/munet setup

demo: setup
	@mkdir -p $(OUT)
	$(VENV)/bin/munet reconstruct examples/lunge.jpg -o $(OUT)/lunge.glb --report $(OUT)/lunge.json --preview $(OUT)/lunge_preview.png --turntable $(OUT)/lunge_turntable.png

# The whole suite; a skipped test fails it (tests/conftest.py), so a green run means everything ran.
test: setup
	$(PY) -m pytest -q --durations=15

# The contributor's quick loop: everything not marked slow (~1-2 minutes on 2 cores).
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) -m benchmarks.body
	$(PY) -m benchmarks.pipeline
	$(PY) -m benchmarks.protocol
	$(PY) -m benchmarks.load
	$(PY) -m benchmarks.coldstart

# The backend's wheel (munet + munet_backend + the shipped checkpoint; no training, no tests) in dist/.
# setuptools reuses build/lib: a stale copy there would ship modules deleted since.
wheel: $(STAMP)
	rm -rf build/lib build/bdist.* dist/munet_blender-*.whl
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation -w dist .
	@ls dist/munet_blender-*.whl

# A server's environment: make install-backend VENV_DIR=/opt/munet (README: Run the backend on a server).
install-backend: wheel
	@test -n "$(VENV_DIR)" || { echo "make: name the environment: make install-backend VENV_DIR=/path/to/venv" >&2; exit 2; }
	sh scripts/install_backend.sh $(VENV_DIR) $$(ls dist/munet_blender-*.whl)

# The shipped model from nothing: data, training, ship, evaluation (resumable; training/reproduce.py states
# its budget). ARGS passes options, e.g. make reproduce ARGS="--budget-samples 144000 --nproc 2".
reproduce: setup
	$(PY) -m training.reproduce --out runs/reproduce $(ARGS)

clean:
	rm -rf $(VENV) $(OUT) dist
