# ffrtmp developer entry points. `make help` lists them.
# The local stack and the tests use a real etcd + kube-apiserver built by tools/binaries.sh (cached in
# ~/.cache/ffrtmp, or taken from $KUBEBUILDER_ASSETS).

PYTHON ?= python3
AGENTS ?= 2
SLOTS ?= 2
METRICS_PORT ?= 9090
NODES ?= 1
DEV ?= .dev
PYTEST_ARGS ?=

export PYTHONPATH := $(CURDIR)/tools$(if $(PYTHONPATH),:$(PYTHONPATH))
STACK = $(PYTHON) -m ffrtmp_stack --dev-dir $(DEV)
CLUSTER = $(PYTHON) -m ffrtmp_cluster --dev-dir $(DEV)
PYTEST = $(PYTHON) -m pytest $(PYTEST_ARGS)

.DEFAULT_GOAL := help
.PHONY: image cluster cluster-demo cluster-status test-cluster kind
.PHONY: help setup deps tools crds dashboards up down status clean lint test test-unit test-integration test-e2e bench bench-smoke bench-media demo

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

setup: ## install what demo and tests need (Debian packages, Python package, Go-built binaries); skips what is there
	PYTHON=$(PYTHON) tools/setup.sh

deps: ## install the Python package with its test extras (editable)
	$(PYTHON) -m pip install -e '.[test]'

tools: ## build (once) kube-apiserver, kubectl, etcd and helm; prints their folder
	tools/binaries.sh

crds: ## regenerate crds/ from operator/ffrtmp_operator/api.py (and the chart's copy)
	$(PYTHON) -m ffrtmp_operator.crd --write crds
	@if [ -d helm/ffrtmp/crds ]; then cp crds/*.yaml helm/ffrtmp/crds/ && echo "copied to helm/ffrtmp/crds/"; fi

dashboards: ## regenerate grafana/*.json from grafana/generate.py (and the chart's copy)
	$(PYTHON) grafana/generate.py

up: ## start the local stack: etcd, kube-apiserver, operator, AGENTS standalone agents with SLOTS each
	$(STACK) up --agents $(AGENTS) --slots $(SLOTS) --metrics-port $(METRICS_PORT)

demo: setup ## make up, then run examples/hello.yaml and file-to-hevc.yaml on shared media (.dev/media) and follow them
	$(STACK) demo --agents $(AGENTS) --slots $(SLOTS) --metrics-port $(METRICS_PORT)

down: ## stop the local stack (etcd data stays in $(DEV)) and `make cluster` (removes all it made)
	$(STACK) down
	$(CLUSTER) down

image: ## build the ffrtmp image here, no registry: dist/ffrtmp-<version>.tar (cached; prints name, digest, size)
	$(CLUSTER) image

cluster: setup image ## a real cluster here: control plane + NODES kubelet/containerd nodes, chart installed by helm
	$(CLUSTER) up --nodes $(NODES)

cluster-demo: cluster ## make cluster, then run the example jobs as pods (output on a PersistentVolume) and follow them
	$(CLUSTER) demo --nodes $(NODES)

cluster-status: ## show `make cluster`'s parts, nodes and pods; fails unless all run
	$(CLUSTER) status

kind: image ## a kind cluster (Docker or podman) with the image loaded and the chart installed
	tools/kind.sh

status: ## show the local stack's parts; fails unless all run and are ready
	$(STACK) status

clean: down ## stop the stack and delete its state ($(DEV))
	rm -rf $(DEV)

lint: ## ruff lint + format check over the tree, mypy over the pure core (all configured in pyproject.toml)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

# The order is shuffled on every run (pytest-randomly; the header prints the seed): repeat one with
# PYTEST_ARGS=--randomly-seed=N, keep the file order with PYTEST_ARGS="-p no:randomly".
test: setup ## every test, in random order: unit, integration (real apiserver), e2e, security, bench's pure checks, then the cluster suite
	$(PYTEST) tests bench/tests --ignore=tests/cluster
	$(PYTEST) tests/cluster

test-unit: ## pure-logic tests, no cluster (and bench's pure checks)
	$(PYTEST) tests/unit bench/tests

test-integration: ## tests against a real kube-apiserver + etcd
	$(PYTEST) tests/integration

test-cluster: setup image ## the cluster suite: against FFRTMP_TEST_KUBECONFIG, else a `make cluster` of its own
	$(PYTEST) tests/cluster

test-e2e: ## end-to-end tests
	$(PYTEST) tests/e2e

bench-smoke: ## scheduler benchmark, smoke size (M=1000 jobs, N=100 nodes, then 50 jobs/s paced; minutes) -> bench/results/scheduler-smoke.json
	$(PYTHON) -m bench.scheduler --size smoke --profile
	$(PYTHON) -m bench.report

bench-media: ## split-and-stitch overhead and ABR one-decode ladder vs separate jobs (minutes) -> bench/results/media.json
	$(PYTHON) -m bench.media

bench: ## full benchmarks (long): scheduler M=10000/N=500, scaling 1k-50k queued / 100-2,000 nodes, transcode overhead vs bare ffmpeg, job vs plain pod on make cluster -> bench/results/
	$(PYTHON) -m bench.scheduler --size full --profile
	$(PYTHON) -m bench.scaling
	$(PYTHON) -m bench.transcode
	$(PYTHON) -m bench.cluster_overhead --dev-dir $(DEV)
	$(PYTHON) -m bench.report
