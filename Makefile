# ingestload — thin wrappers; everything real lives in the `ingestload` command and pytest.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RATE   ?= 2775
VENDOR := src/ingestload/webui/static/vendor
UPLOT  := $(VENDOR)/uPlot.iife.min.js

.PHONY: install run ui distributed test test-fast bench bench-rate bench-api bench-api-user bench-fanout bench-sink api fanout \
	fanout-run sink-run \
	docs lint clean kube-render kube-validate kube-image test-kube

install: $(STAMP) $(UPLOT)

$(STAMP): pyproject.toml hatch_build.py src/ingestload/verify/_scan.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## The rate chart's library (uPlot, pinned in package.json / package-lock.json) from the npm registry,
## copied into the package (src/ingestload/webui/static/vendor/, not in git) so that wheels and the image carry it.
$(UPLOT): package.json package-lock.json
	@if ! command -v npm >/dev/null; then \
	  echo "make: npm not found: the web UI's rate chart needs it (apt-get install -y npm); the rest works without"; \
	else \
	  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
	  && mkdir -p $(VENDOR) \
	  && cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css $(VENDOR)/ \
	  && cp node_modules/uplot/LICENSE $(VENDOR)/uPlot.LICENSE; \
	fi

## The main job: embedded broker + a one-minute headless run at $(RATE) msg/s, read back per topic.
run: install
	$(BIN)/ingestload run --rate $(RATE)

## The same load from Locust's web UI (http://127.0.0.1:8089).
ui: install
	$(BIN)/ingestload run --ui --rate $(RATE)

## Master + 2 worker processes on this machine (the API path posts batches of up to 20).
distributed: install
	$(BIN)/ingestload run --processes 2 --rate 10000 --api-batch-size 20

## Every test layer; starts its own embedded broker (or uses $$KAFKA_BOOTSTRAP).
test: install
	$(BIN)/python -m pytest

## Unit tests only (no broker).
test-fast: install
	$(BIN)/python -m pytest tests/unit

## Issue 20's goals, met or not: the Kafka path, the verifier (1 and 2 processes), E2E latency.
bench: install
	$(BIN)/python bench/kafka_produce.py --gc-compare
	$(BIN)/python bench/verify_throughput.py
	$(BIN)/python bench/e2e_latency.py

## Rate accuracy from broker timestamps: ingestload vs constant_throughput vs constant_total_ips.
bench-rate: install
	$(BIN)/python bench/rate_accuracy.py

## HTTP path: the reference ingest API vs seed 001's naive Flask app (needs wrk: apt-get install -y wrk).
bench-api: install
	$(BIN)/python bench/ingest_api.py

## HTTP client side: IngestApiUser vs bare FastHttpUsers posting the same bodies to a minimal server.
bench-api-user: install
	$(BIN)/python bench/api_user.py

## The storage hop: the reference sink vs bare COPY / executemany loops into the same table layout,
## and the sink verifier's rows checked per second vs a bare read (embedded broker and PostgreSQL).
bench-sink: install
	$(BIN)/python bench/sink.py

## The reference ingest API on http://127.0.0.1:8080 with an embedded broker (Ctrl-C to stop).
api: install
	$(BIN)/ingestload api

## Every kustomize overlay (and ci + the optional components) rendered into build/kube/.
kube-render: install
	$(BIN)/python -m tests.kube.manifests render build/kube

## The renderings validated offline, strictly, against Kubernetes schemas (kubernetes-validate).
kube-validate: install
	$(BIN)/python -m tests.kube.manifests validate

## kube/Containerfile built here with no registry (Debian base by mmdebstrap, podman), saved for containerd.
kube-image: install
	$(BIN)/python -m tests.kube.cluster image

## The five checks on a real cluster: $$KUBECONFIG's (with $$INGESTLOAD_KUBE_IMAGE), or a
## single-node Kubernetes v1.20 built and started here (tests/kube/cluster; needs root).
test-kube: install
	$(BIN)/python -m tests.kube.cluster install-deps
	$(BIN)/python -m pytest -m kube tests/kube --durations=0

## The reference fan-out gateway on ws://127.0.0.1:8765/v1/stream with an embedded broker (Ctrl-C to stop).
fanout: install
	$(BIN)/ingestload fanout

## The last hop end to end: broker + reference gateway + 1 producer at $(RATE) msg/s + $(SUBSCRIBERS) subscribers, both verdicts.
SUBSCRIBERS ?= 50
fanout-run: install
	$(BIN)/ingestload run --fanout --rate $(RATE) --subscribers $(SUBSCRIBERS)

## The storage hop end to end: broker + API + a throwaway PostgreSQL + the reference sink, every hop judged.
sink-run: install
	$(BIN)/ingestload run --sink --rate $(RATE)

## The last hop: WebSocket server stacks, subscriber clients, and ours vs seed 003's Tornado design.
bench-fanout: install
	$(BIN)/python bench/ws_stacks.py
	$(BIN)/python bench/ws_client.py
	$(BIN)/python bench/fanout.py

## docs/options.md from the options' declarations (a unit test fails when it is stale).
docs: install
	$(BIN)/python -m ingestload.optiondocs > docs/options.md

## ruff, mypy (strict on src/), and the layer contract of pyproject.toml (import-linter).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
