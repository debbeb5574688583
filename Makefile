# diffad: `make run` runs the main experiment on the built-in data, `make test` runs the whole test suite.
# Both create .venv and install everything they need on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install run test docs bench clean

$(STAMP): settings.ini setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	mkdir -p outputs/run
	$(BIN)/papermill nbs/run.ipynb outputs/run/run.ipynb -p out_dir ../outputs/run

test: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH bash .ci/test

# the docs site in _docs/, built offline (no Quarto); DOCS_ARGS="--only nbs/01_noise.ipynb" builds index + that notebook
docs: $(STAMP)
	$(BIN)/python tools/build_docs.py $(DOCS_ARGS)

clean:
	rm -rf $(VENV) _docs _proc *.egg-info
