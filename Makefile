PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check fuzz bench lint format clean eval-masking

$(STAMP): pyproject.toml setup.py proxy/_fastpath.c proxy/_spool.c proxy/_spool.h
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m jitgate.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy jitgate proxy approvals masking bot audit store guard identity mcp_gateway notify
	$(BIN)/python -m pytest -q

# The wire fuzzer at full size against a live gateway, loopback only (a few minutes on two
# cores): 10,000 mutated client streams and 2,000 COPY orders from seed FUZZ_SEED on; then
# 20 kill -9s of a real gateway under pgbench writes, each audited record checked.
FUZZ_SEED ?= 2000000
fuzz: $(STAMP)
	JITGATE_FUZZ_SEED=$(FUZZ_SEED) JITGATE_FUZZ_CASES=10000 JITGATE_FUZZ_COPY_CASES=2000 \
		$(BIN)/python -m pytest -q -s tests/test_fuzz_wire.py tests/test_fuzz_copy_model.py
	JITGATE_CRASH_KILLS=20 JITGATE_CRASH_SEED=$(FUZZ_SEED) \
		$(BIN)/python -m pytest -q -s tests/test_crash_audit.py

bench: $(STAMP)
	$(BIN)/python -m bench

eval-masking: $(STAMP)
	$(BIN)/python -m masking.eval

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
