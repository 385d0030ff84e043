# NAR: the two commands a fresh machine needs are `make demo` and `make test` (see README).
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
DATA    ?= $(or $(NAR_DATA_DIR),../shared/data)
CACHE   := cache
RUN     ?= runs/demo201
SEED    ?= 0

.PHONY: install prepare demo test bench clean

$(BIN)/nar-cli: setup.cfg pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0 || $(BIN)/pip install -q "torch>=2.1,<2.15"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/nar-cli

# Default data: the shared tables when present, else the CIFAR-10 data of analog-nasbench.
ifneq ($(wildcard $(DATA)/nb201/nb201.csv.gz),)
PREPARED := $(CACHE)/nb201_table.json $(CACHE)/nb101_20k.json
DEMO_JSON := $(CACHE)/nb201_table.json
else
PREPARED := $(CACHE)/nb201_analognas.json
DEMO_JSON := $(CACHE)/nb201_analognas.json
endif

$(CACHE)/nb201_table.json: $(DATA)/nb201/nb201.csv.gz | $(BIN)/nar-cli
	$(BIN)/nar-cli build --bench 201 --source $< --out $@
	$(BIN)/nar-cli encode --bench 201 --data_path $@

$(CACHE)/nb101_20k.json: $(DATA)/nb101/nb101_20k.csv.gz | $(BIN)/nar-cli
	$(BIN)/nar-cli build --bench 101 --source $< --out $@
	$(BIN)/nar-cli encode --bench 101 --data_path $@

$(CACHE)/nb201_analognas.json: | $(BIN)/nar-cli
	$(BIN)/nar-cli build --bench 201 --source analognas --out $@
	$(BIN)/nar-cli encode --bench 201 --data_path $@

prepare: $(PREPARED)

demo: prepare
	$(BIN)/nar-cli train --config_file config/default201.yml --data_path $(DEMO_JSON) --save_dir $(RUN) --seed $(SEED) --overwrite
	$(BIN)/nar-cli test --config_file config/default201.yml --data_path $(DEMO_JSON) --save_dir $(RUN) --checkpoint ckp_best.pth --seed $(SEED) --save_file_name test.log
	$(BIN)/nar-cli sample --config_file config/default201.yml --data_path $(DEMO_JSON) --save_dir $(RUN) --checkpoint ckp_best.pth --seed $(SEED)
	@echo "run directory: $(RUN) (config.yaml, train.log, metrics.csv, results.json, search.json, search.png)"

test: install
	$(BIN)/python -m pytest -q

bench: install prepare
	$(BIN)/python bench/bench_space.py
	$(BIN)/python bench/bench_cost.py
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_sampler.py

clean:
	rm -rf $(CACHE)/*.h5 $(CACHE)/*.json $(CACHE)/*.sha256 $(CACHE)/*.npz runs
