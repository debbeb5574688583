# diffad: `make run` runs the main experiment on the built-in data, `make test` runs the whole test suite.
# Both create .venv and install everything they need on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install run test docs bench bench-gpu studies study report clean

$(STAMP): settings.ini setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev,export]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

# the run notebook with its defaults: the cpu preset on the built-in dataset; results in outputs/run/
run: $(STAMP)
	mkdir -p outputs/run
	$(BIN)/papermill --log-output --progress-bar nbs/run.ipynb outputs/run/run.ipynb -p out_dir outputs/run

# speed benchmarks on this machine (each writes outputs/benchmarks/<name>.json)
bench: $(STAMP)
	for b in noise metrics pipeline switches export roofline; do $(BIN)/papermill nbs/benchmarks/$$b.ipynb /tmp/diffad_bench_$$b.ipynb || exit 1; done

# the paper-scale benchmark, on a GPU machine (outputs/benchmarks/gpu.json)
bench-gpu: $(STAMP)
	$(BIN)/papermill nbs/benchmarks/gpu.ipynb outputs/benchmarks/gpu.ipynb

# the finished studies as papermill notebooks (nbs/studies/); DATA holds piped/, mvtec_subset/, hazelnut_toy/ (default ../shared/data).
# `make studies` regenerates every study's tables from its committed results; `make study` reruns the first study's missing runs
DATA ?= ../shared/data
studies: $(STAMP)
	for s in gmm:gmm_study recon:study_recon noise2:study2 study1:study bf16:bf16_study noise_choice:noise_choice/six budget:budget; do n=$${s%%:*}; d=$${s#*:}; \
	  $(BIN)/papermill --no-progress-bar nbs/studies/$$n.ipynb outputs/$$d/$$n.ipynb -p data_root $(DATA) || exit 1; done
	$(BIN)/papermill --no-progress-bar nbs/studies/noise_choice.ipynb outputs/noise_choice/noise_choice.ipynb -p data_root $(DATA) -p plan three
	$(BIN)/papermill --no-progress-bar nbs/studies/noise_choice.ipynb outputs/noise_choice/fresh/noise_choice.ipynb -p data_root $(DATA) -p plan fresh

study: $(STAMP)
	$(BIN)/papermill nbs/studies/study1.ipynb outputs/study/study1.ipynb -p data_root $(DATA) -p rerun True

# regenerate the first study's tables from the results.json files under outputs/study
report: $(STAMP)
	$(BIN)/papermill --no-progress-bar nbs/studies/study1.ipynb outputs/study/study1.ipynb -p data_root $(DATA)

test: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH bash .ci/test

# the docs site in _docs/ (no Quarto, no network when read): the notebooks run into _exec/ (only those out of date),
# nbdev's doc processors into _proc/, Sphinx + myst-nb (docs/conf.py) into _docs/
docs: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH bash tools/docs.sh

clean:
	rm -rf $(VENV) _docs _proc _exec _sphinx docs/node_modules *.egg-info
