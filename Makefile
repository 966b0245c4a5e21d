# Two set-up commands (see README): `make demo` runs the main job on the offline default,
# `make test` runs the tests. Both install what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python
# GPU users: `make demo TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126` installs the pinned
# torch from that index (any CUDA build) before the rest.
TORCH_INDEX_URL ?=
TORCH_PIN := $(shell grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')

.PHONY: install demo test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install-wordnet.sh
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(if $(TORCH_INDEX_URL),$(PY) -m pip install -q "$(TORCH_PIN)" --index-url $(TORCH_INDEX_URL))
	$(PY) -m pip install -q -e '.[test,tracking]'
	bash scripts/install-wordnet.sh $(VENV)
	touch $@

# First use mines data/corpus (configs/local.yaml: offline.build); the base ships in models/stand-in-base.
demo: install
	$(VENV)/bin/hybridcl run configs/local.yaml

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest -q

clean:
	rm -rf $(VENV) .cache data runs
