# diffad: `make run` runs the main experiment on the built-in data, `make test` runs the whole test suite.
# Both create .venv and install everything they need on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install run test docs bench bench-gpu study report clean

$(STAMP): settings.ini setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

# the run notebook with its defaults: the cpu preset on the built-in dataset; results in outputs/run/
run: $(STAMP)
	mkdir -p outputs/run
	$(BIN)/papermill --log-output --progress-bar nbs/run.ipynb outputs/run/run.ipynb -p out_dir outputs/run

# speed benchmarks on this machine (each writes outputs/benchmarks/<name>.json)
bench: $(STAMP)
	for b in noise metrics pipeline switches; do $(BIN)/papermill nbs/benchmarks/$$b.ipynb /tmp/diffad_bench_$$b.ipynb || exit 1; done

# the paper-scale benchmark, on a GPU machine (outputs/benchmarks/gpu.json)
bench-gpu: $(STAMP)
	$(BIN)/papermill nbs/benchmarks/gpu.ipynb outputs/benchmarks/gpu.ipynb

# the committed real-data study (needs PIPED in the MVTec layout; default ../shared/data/piped)
study: $(STAMP)
	bash outputs/study/run_study.sh $(PIPED)

# regenerate the study's tables from the results.json files under outputs/study
report: $(STAMP)
	$(BIN)/python -c "from diffad.report import build_report; print(build_report('outputs/study'))"

test: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH bash .ci/test

# the docs site in _docs/ (no Quarto, no network when read): the notebooks run into _exec/ (only those out of date),
# nbdev's doc processors into _proc/, Sphinx + myst-nb (docs/conf.py) into _docs/
docs: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH bash tools/docs.sh

clean:
	rm -rf $(VENV) _docs _proc _exec _sphinx docs/node_modules *.egg-info
