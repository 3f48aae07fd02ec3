# make lab   — set up .venv (if missing or stale), regenerate notebooks, open JupyterLab
# make test  — the same setup, then every unit test and every notebook in the `ci` profile
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REQ_HASH := $(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)
NOTEBOOKS := $(wildcard notebooks/*.py)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test setup notebooks bench clean-cache

setup: $(STAMP)

# A stamp named after the requirements' hash: edit a pin and the next make reinstalls.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

notebooks: $(STAMP)
	$(PY) -m jupytext --to ipynb --update $(NOTEBOOKS)

lab: notebooks
	cd notebooks && ../$(PY) -m jupyter lab --ip=127.0.0.1 --no-browser $(ROOT_FLAG)

test: notebooks
	LABKIT_PROFILE=ci $(PY) -m pytest tests notebooks --nbmake --nbmake-timeout=600

bench: $(STAMP)
	$(VENV)/bin/labkit bench

clean-cache:
	rm -rf data/cache
