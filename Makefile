# make lab   — set up .venv (if missing or stale), regenerate notebooks, open JupyterLab
# make test  — the same setup, then every unit test and every notebook in the `ci` profile
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REQ_HASH := $(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)
NOTEBOOKS := $(wildcard notebooks/*.py)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

# glibc hands freed blocks above 128 KiB back to the OS and page-faults them in again on the next allocation.
# The large autograd buffers of Neural Cleanse's batched solve (32 images x 10 labels per step) pay that on
# every step; keeping blocks up to 32 MiB in the heap makes the solve about 1.7x faster on CPU (lab profile,
# 10 labels: 10 s instead of 17.5 s) with identical results. Both are needed: the trim threshold alone pins the
# mmap threshold at 128 KiB and is slower; 32 MiB is the largest mmap threshold every 64-bit glibc accepts.
# Other platforms ignore these variables.
export MALLOC_MMAP_THRESHOLD_ := 33554432
export MALLOC_TRIM_THRESHOLD_ := 268435456

.PHONY: lab test test-browser setup notebooks bench warm clean-cache site reproduce

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

# JupyterLab in headless chromium (Debian's /usr/bin/chromium, driven by playwright): run every cell of two
# notebooks, move a control, screenshots in data/browser/. `make test` skips it; .ci/run runs both.
test-browser: notebooks
	LABKIT_PROFILE=ci LABKIT_BROWSER_TEST=1 $(PY) -m pytest tests/browser -v

bench: $(STAMP)
	$(VENV)/bin/labkit bench

# Fill the cache for every notebook before a seminar: make warm PROFILE=lab (JOBS=N notebooks at once;
# WIDGETS=1 every widget position too)
warm: notebooks
	$(VENV)/bin/labkit warm --profile $(or $(PROFILE),lab) $(if $(JOBS),--jobs $(JOBS),) $(if $(WIDGETS),--widgets,)

# The course as static HTML: make site PROFILE=lab (the default) → data/site/index.html; quick once the cache is warm
site: $(STAMP)
	$(VENV)/bin/labkit site --profile $(or $(PROFILE),lab)

# The reproduction report: make reproduce DATASET=mnist PROFILE=lab → data/reports/mnist-lab/index.md (claims.json,
# figures); every paper's claims with the paper's value, ours (mean ± std over the profile's seeds) and a verdict.
# On 2 cores: make reproduce DATASET=mnist JOBS=2 THREADS=1 (two one-thread processes: the fastest there).
reproduce: $(STAMP)
	$(if $(THREADS),LABKIT_THREADS=$(THREADS) ,)$(VENV)/bin/labkit reproduce --dataset $(or $(DATASET),digits) --profile $(or $(PROFILE),lab) $(if $(JOBS),--jobs $(JOBS),)

clean-cache:
	rm -rf data/cache
