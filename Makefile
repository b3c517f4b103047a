# dflow cloud accounts: build, lint, test and local tooling.
#
#   make tools    create .venv (requirements-dev.txt) and .tools/bin (aws-lambda-rie)
#   make build    build every Lambda in template.yaml to bin/<LogicalId>/bootstrap
#   make lint     gofmt, go vet, cfn-lint
#   make test     tools + lint + go test -race (what CI runs)
#   make run      run the local API (cmd/local)
#   make bench    run the Go benchmarks
#   make clean    remove build output (keeps .venv and .tools)
#
# sam build runs `make build-<LogicalId>` (BuildMethod: makefile) with
# ARTIFACTS_DIR set; the pattern rule build-%Function below serves it.

SHELL := /bin/bash
.DEFAULT_GOAL := build

# Logical ids of every AWS::Serverless::Function in template.yaml: a key at
# two spaces of indentation under Resources whose Type line (four spaces)
# is AWS::Serverless::Function.
FUNCTIONS := $(shell awk '/^[^[:space:]\#]/ { inres = ($$0 ~ /^Resources:/) } inres && /^  [A-Za-z0-9]+:/ { id = $$1; sub(/:.*/, "", id) } inres && /^    Type:[[:space:]]*"?AWS::Serverless::Function"?[[:space:]]*$$/ { print id }' template.yaml)

# Lambda target architecture. Override with LAMBDA_GOARCH=amd64 to run a
# bootstrap on this x86 host under aws-lambda-rie.
LAMBDA_GOARCH ?= arm64

GO_LAMBDA_FLAGS := -tags lambda.norpc -trimpath -buildvcs=false -ldflags="-s -w"

VENV := .venv
VENV_BIN := $(CURDIR)/$(VENV)/bin
VENV_STAMP := $(VENV)/.requirements-dev.stamp

TOOLS_BIN := $(CURDIR)/.tools/bin
RIE_MODULE := github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie
RIE_VERSION := v0.0.0-20261030222936-bef5c4ba774d
RIE_STAMP := .tools/.aws-lambda-rie-$(RIE_VERSION).stamp
RIE_BIN := $(TOOLS_BIN)/aws-lambda-rie

# PATH for recipes that use the project tools (moto_server, cfn-lint,
# aws-lambda-rie); target-specific, so prerequisites inherit it.
TOOLS_PATH := $(VENV_BIN):$(TOOLS_BIN):$(PATH)

# Lower-cases its argument: $(call lc,Tenants) -> tenants.
lc = $(shell printf '%s' '$(1)' | tr '[:upper:]' '[:lower:]')

.PHONY: all build tools lint fmt-check vet cfn-lint test run bench clean list-functions FORCE

all: build

## build: every function in template.yaml to bin/<LogicalId>/bootstrap
# ARTIFACTS_DIR is emptied here so an exported one cannot redirect every
# function into the same directory.
build: ARTIFACTS_DIR =
build: $(addprefix build-,$(FUNCTIONS))

list-functions:
	@echo $(FUNCTIONS)

# XxxFunction is built from ./functions/xxx into $(ARTIFACTS_DIR)/bootstrap
# (set by sam build), or bin/XxxFunction/bootstrap when ARTIFACTS_DIR is unset.
# A pattern rule cannot be .PHONY (make skips implicit rules for phony
# targets), so FORCE makes it run every time instead.
build-%Function: FORCE
	@mkdir -p "$(or $(ARTIFACTS_DIR),bin/$*Function)"
	GOOS=linux GOARCH=$(LAMBDA_GOARCH) CGO_ENABLED=0 go build $(GO_LAMBDA_FLAGS) -o "$(or $(ARTIFACTS_DIR),bin/$*Function)/bootstrap" ./functions/$(call lc,$*)

FORCE:

## tools: project venv (moto, cfn-lint) and aws-lambda-rie
tools: $(VENV_STAMP) $(RIE_BIN)

# Rebuilt from scratch whenever requirements-dev.txt changes.
$(VENV_STAMP): requirements-dev.txt
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	$(VENV_BIN)/python -m pip install --disable-pip-version-check --no-input --quiet -r requirements-dev.txt
	touch $@

# Installed when missing or when RIE_VERSION changes (new stamp file).
$(RIE_BIN): $(RIE_STAMP)
	GOBIN=$(TOOLS_BIN) go install $(RIE_MODULE)@$(RIE_VERSION)
	touch $@

$(RIE_STAMP):
	mkdir -p $(TOOLS_BIN)
	rm -f .tools/.aws-lambda-rie-*.stamp
	touch $@

## lint: gofmt, go vet, cfn-lint
lint: fmt-check vet cfn-lint

# Every .go file outside dot directories, bin/ and testdata/.
fmt-check:
	@unformatted="$$(find . \( -path './.*' -o -path ./bin -o -name testdata \) -prune -o -type f -name '*.go' -exec gofmt -l {} +)" || exit 1; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt: these files are not formatted (run gofmt -w on them):"; \
		echo "$$unformatted"; \
		exit 1; \
	fi

vet:
	go vet ./...

cfn-lint: $(VENV_STAMP)
	$(VENV_BIN)/cfn-lint template.yaml

## test: everything CI runs
test: export PATH := $(TOOLS_PATH)
test: export AWS_EC2_METADATA_DISABLED := true
test: tools lint
	go test -race -count=1 ./...

## run: the local API
run: export PATH := $(TOOLS_PATH)
run: tools
	go run ./cmd/local

## bench: the Go benchmarks
bench: export PATH := $(TOOLS_PATH)
bench: export AWS_EC2_METADATA_DISABLED := true
bench: tools
	go test -run '^$$' -bench . -benchmem -count 1 ./...

clean:
	rm -rf bin .aws-sam .local
