# Two commands do everything on a fresh Linux machine with Python 3.11:
#   make demo   set up, then reconstruct the bundled example photo
#   make test   set up, then run the whole test suite
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT := out

.PHONY: setup sysdeps demo test bench clean
.DEFAULT_GOAL := demo

$(STAMP): requirements.txt requirements-mediapipe.txt constraints.txt pyproject.toml
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
	$(VENV)/bin/munet reconstruct examples/lunge.jpg -o $(OUT)/lunge.glb --report $(OUT)/lunge.json --preview $(OUT)/lunge_preview.png

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m backend.bench.body
	$(PY) -m backend.bench.pipeline
	$(PY) -m backend.bench.protocol
	$(PY) -m backend.bench.load

clean:
	rm -rf $(VENV) $(OUT) dist
