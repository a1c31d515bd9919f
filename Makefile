# Two commands on a fresh machine: `make run` starts the proxy, `make test` passes the tests.
#
#   make install   .venv from requirements.lock (hash-checked wheels only), then the proxy itself
#   make run       the proxy on http://127.0.0.1:3000 (ARGS="--port 3001 ..." passes flags)
#   make dev       the same under Hypercorn with auto-reload on code changes
#   make stop      stops what `make run` or `make dev` started (SIGTERM: a graceful shutdown)
#   make claude    Claude Code through the proxy (ARGS="-p 'hello'" passes arguments to Claude Code)
#   make test      import contracts, mypy, then the whole test suite (installs Debian's chromium for the dashboard tests)
#   make bench     benchmarks against the floor, LiteLLM and claude-code-router (docs/BENCHMARKS.md)
#   make lock      regenerate requirements.lock from pyproject.toml (needs the network)
#   make mutate    mutation testing of proxy/protocol/ and proxy/stream/ (docs/TESTING.md)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The proxy needs Python 3.11+ (exception groups, trio's strict nurseries): said before pip runs.
NEEDS_PYTHON := import sys; v = sys.version_info; sys.exit(0 if tuple(v[:2]) >= (3, 11) else \
	"needs Python 3.11+, found %d.%d (%s); run make with PYTHON=python3.11 (or newer)" % (v[0], v[1], sys.executable))
# A .venv made by an older Python (or whose Python is gone) is rebuilt, not patched.
VENV_UNFIT := $(shell test -d $(VENV) && { $(BIN)/python -c 'import sys; sys.exit(tuple(sys.version_info[:2]) < (3, 11))' \
	>/dev/null 2>&1 || echo unfit; })
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)
PIDFILE := .cache/proxy.pid
HOST   ?= 127.0.0.1
PORT   ?= 3000
ARGS   ?=

.PHONY: install run dev stop claude test lock clean bench fuzz mutate mutate-show mutate-lock FORCE

# Every dependency is pinned with its hashes; pip refuses anything else (--require-hashes)
# and installs no source distribution (--only-binary): no code runs at install time.
# The proxy itself is then installed without resolving anything (--no-deps), built with
# the setuptools the lock pinned (--no-build-isolation: no unpinned download).
$(STAMP): pyproject.toml requirements.lock $(if $(VENV_UNFIT),FORCE)
	@$(PYTHON) -c '$(NEEDS_PYTHON)'
	@if test -n "$(VENV_UNFIT)"; then echo "$(VENV) was made by a Python older than 3.11 (or its Python is gone): rebuilding it"; \
		rm -rf $(VENV); fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --only-binary :all: -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/claude-code-ollama-proxy serve --pid-file $(PIDFILE) $(ARGS)

# Hypercorn's reloader needs a worker process: it restarts it when a watched file changes.
# Settings come from PROXY_* variables and proxy.config.json (Hypercorn passes no flags).
dev: $(STAMP)
	@mkdir -p .cache
	$(BIN)/hypercorn proxy.app:app --worker-class trio --reload --workers 1 \
		--bind $(HOST):$(PORT) --pid $(PIDFILE) $(ARGS)

# SIGTERM, then wait (bounded) until the process is gone. The PID file is the proxy's own:
# it removes it as it exits, and a file left by a dead one is replaced by the next proxy,
# so `make stop` never deletes a file another proxy may have just written.
STOP_WAIT ?= 60
stop:
	@pid=$$(cat $(PIDFILE) 2>/dev/null); \
	if test -z "$$pid"; then echo "nothing to stop ($(PIDFILE) not found)"; \
	elif ! kill -TERM "$$pid" 2>/dev/null; then echo "nothing to stop: no process $$pid ($(PIDFILE) is left over; the next make run replaces it)"; \
	else n=0; while kill -0 "$$pid" 2>/dev/null && test $$n -lt $$(( $(STOP_WAIT) * 10 )); do sleep 0.1; n=$$((n + 1)); done; \
		if kill -0 "$$pid" 2>/dev/null; then echo "sent SIGTERM to $$pid; it is still running after $(STOP_WAIT) s" >&2; exit 1; fi; \
		echo "stopped $$pid"; fi

claude: $(STAMP)
	$(BIN)/claude-code-ollama-proxy claude $(ARGS)

# The dashboard's tests drive Debian's headless Chromium; a fresh machine gets it here.
# CHROMIUM=/path/to/chrome (in the environment or on the command line) uses that one instead
# (make passes it on to the tests, whose tests/browser.py reads it).
CHROMIUM ?= /usr/bin/chromium
APT    := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get
$(CHROMIUM):
	$(APT) install -y --no-install-recommends chromium >/dev/null 2>&1 \
		|| { $(APT) update -qq && $(APT) install -y --no-install-recommends chromium; }

# The layering contracts (pyproject.toml, docs/ARCHITECTURE.md) first: a broken rule fails fast.
# Then mypy, strict over proxy/ ([tool.mypy] in pyproject.toml); then pytest.
test: $(STAMP) $(CHROMIUM)
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/mypy
	$(BIN)/python -m pytest -q $(ARGS)

# pip-tools resolves pyproject.toml's dependencies, its test extra and its build backend,
# and records every file's hash. Runs in a throwaway venv so .venv keeps the old pins.
lock:
	@rm -rf .cache/lock-venv && $(PYTHON) -m venv .cache/lock-venv
	.cache/lock-venv/bin/python -m pip install --quiet pip-tools
	.cache/lock-venv/bin/pip-compile --quiet --extra test --build-deps-for editable --allow-unsafe \
		--generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements.lock pyproject.toml
	@rm -rf .cache/lock-venv

clean:
	rm -rf $(VENV) .cache .pytest_cache .hypothesis

# Benchmarks are not tests: timings are reported, never asserted. bench/run_all.py starts the
# fake Ollama, this proxy and the peers (installed into .cache/bench on first use), measures,
# and rewrites docs/BENCHMARKS.md and docs/benchmarks.png (about 10 minutes). BENCH_RUNS,
# BENCH_REQUESTS, BENCH_MEMORY_SECONDS, BENCH_TARGETS and BENCH_PHASES tune it; ARGS="..." too.
# Then bench/affinity.py (about 2 minutes): prefill with four caching fake Ollamas, session
# affinity vs round-robin, into docs/DEPLOYMENT.md.
bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(ARGS)
	$(BIN)/python bench/affinity.py --out docs/DEPLOYMENT.md

# The fuzz harness for minutes: FUZZ_EXAMPLES=N sets the examples per property (default 20000).
fuzz: $(STAMP)
	FUZZ_PROFILE=long $(BIN)/python -m pytest -q fuzz $(ARGS)

# Mutation testing of the sans-I/O core (docs/TESTING.md). mutmut, pinned with hashes in
# scripts/mutate-requirements.lock (outside the runtime lock, like the bench's peers), lives
# in .cache/mutate with the runtime lock's packages. Its work tree is mutants/; the test map
# (which tests reach which function) is rebuilt on every run so new tests count.
# MUTATE="proxy.stream.machine*" re-runs one module's mutants and keeps the others' verdicts;
# MUTATE_JOBS sets the parallel workers; mypy (type_check_command) is found on the PATH.
# The score table is written into docs/TESTING.md.
MUTATE_VENV  := .cache/mutate
MUTATE_STAMP := $(MUTATE_VENV)/.installed-$(shell cat requirements.lock scripts/mutate-requirements.lock | sha1sum | cut -c1-12)
MUTATE       ?= proxy.protocol.* proxy.stream.*
MUTATE_JOBS  ?= 2

$(MUTATE_STAMP): requirements.lock scripts/mutate-requirements.lock
	@rm -rf $(MUTATE_VENV) && $(PYTHON) -m venv $(MUTATE_VENV)
	$(MUTATE_VENV)/bin/python -m pip install --quiet --require-hashes --only-binary :all: \
		-r requirements.lock -r scripts/mutate-requirements.lock
	@touch $@

# The table is written even when mutmut stops early (its unfinished modules say "not run");
# the target fails when mutmut failed or when the report does (a module under 90 %, one
# not run, a stale accepted equivalent).
mutate: $(MUTATE_STAMP)
	@rm -f mutants/mutmut-stats.json
	@PATH="$(abspath $(MUTATE_VENV))/bin:$$PATH" nice $(MUTATE_VENV)/bin/mutmut run --max-children $(MUTATE_JOBS) $(foreach m,$(MUTATE),"$(m)"); run=$$?; \
		$(MUTATE_VENV)/bin/python scripts/mutation_report.py; report=$$?; \
		test $$run -eq 0 -a $$report -eq 0

mutate-show: $(MUTATE_STAMP)
	@$(MUTATE_VENV)/bin/mutmut show $(NAME)

mutate-lock:
	@rm -rf .cache/lock-venv && $(PYTHON) -m venv .cache/lock-venv
	.cache/lock-venv/bin/python -m pip install --quiet pip-tools
	.cache/lock-venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links \
		--output-file scripts/mutate-requirements.lock scripts/mutate-requirements.in
	@rm -rf .cache/lock-venv
