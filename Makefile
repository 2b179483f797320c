# cryosse: `make demo` sets everything up and runs the embedded default; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= 2
SNAKEMAKE := PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --workflow-profile workflow/profiles/default --cores $(CORES)

.PHONY: setup mkdssp mmseqs rehearse demo test bench lint dryrun clean

# Exact versions from constraints.txt (pyproject.toml holds ranges). torch: pip takes the CPU
# build of the pinned version where the index offers it; for CUDA install the CUDA build of the
# same version first (constraints.txt says how) and pip keeps it.
$(BIN)/cryosse: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt torch
	$(BIN)/pip install --quiet -c constraints.txt -e '.[workflow,monai,nnunet,test]'
	@touch $@

setup: $(BIN)/cryosse mkdssp mmseqs

# mkdssp (Debian package dssp 4.x) for the optional DSSP engine and its tests: installed only when
# missing, and only as root with apt-get; otherwise the mkdssp tests skip with the reason.
mkdssp:
	@command -v mkdssp >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q dssp >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q dssp >/dev/null; } \
	      || echo "could not install dssp: the mkdssp tests will skip"; \
	  else echo "mkdssp not found (install Debian package dssp as root): the mkdssp tests will skip"; fi; }

# mmseqs (Debian package mmseqs2) for the split's prefilter: installed like dssp; without it
# cryosse split aligns every pair (slow for thousands of chains) and its tests skip.
mmseqs:
	@command -v mmseqs >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q mmseqs2 >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q mmseqs2 >/dev/null; } \
	      || echo "could not install mmseqs2: cryosse split will align every pair"; \
	  else echo "mmseqs not found (install Debian package mmseqs2 as root): cryosse split will align every pair"; fi; }

demo: setup
	$(SNAKEMAKE)
	@echo "report: results/report/report.md (figures: results/report/*.png, results/model/training_curve.png)"

# Two workers (pytest-xdist), one per core: the suite's subprocesses, servers and Slurm polling
# leave a core idle otherwise. --dist loadfile keeps each file on one worker (the Slurm scenario's
# module fixture runs once; xdist's loadgroup does not group under pytest 9, whose node ids it
# can no longer rename).
test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -n 2 --dist loadfile

# Benchmarks: each bench/bench_*.py prints its figures (ratios against a reference measured in
# the same run) and writes bench/results/<name>.json.
bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python $$b || exit 1; done

# A rehearsed harvest (bench/rehearse/run.py): a generated EMDB/PDB-layout archive served on
# 127.0.0.1 with injected faults, the online workflow up to the data set; rerun to resume.
# Short by default; a full one: make rehearse REHEARSE_ENTRIES=300 REHEARSE_SCALE=1.
REHEARSE_ENTRIES ?= 20
REHEARSE_SCALE ?= 0.12
REHEARSE_TEMPLATE ?= ../shared/data/emdb_headers/emd-0001.xml
rehearse: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/rehearse/run.py results/rehearse --entries $(REHEARSE_ENTRIES) \
	  --scale $(REHEARSE_SCALE) --template $(REHEARSE_TEMPLATE) --cores $(CORES)

lint: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint

dryrun: setup
	$(SNAKEMAKE) -n

clean:
	rm -rf results logs benchmarks .snakemake
