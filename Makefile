# ioc — the two commands of the README:
#   make run    set up and run everything locally (private ClickHouse, node with
#               embedded NATS JetStream, simulator), until Ctrl-C
#   make test   set up and run every test against real ClickHouse and NATS

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
GOTEST_FLAGS ?= -count=1 -timeout 30m
DATA_DIR ?= data

.PHONY: run test setup ui build vet bench fmt

setup:
	@deploy/local/setup.sh

# The web UI (web/, npm) is built into web/dist, which the binary embeds.
ui:
	@deploy/local/ui.sh

build: setup ui
	$(GO) build -o bin/ioc ./cmd/ioc

run: build
	bin/ioc demo --data-dir $(DATA_DIR)

test:
	@deploy/local/setup.sh --test
	@deploy/local/ui.sh
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	GO=$(GO) deploy/local/gotest.sh $(GOTEST_FLAGS) ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./...

fmt:
	gofmt -w $$(git ls-files '*.go')
