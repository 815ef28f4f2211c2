# Sluice — make run serves the quickstart; make test runs every test. See README.md.
GO       ?= go
BIN      := bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 10s

.PHONY: build quickstart-filter run examples test test-go fuzz lint bench bench-full examples clean

build: ## build the gateway and the testbed servers into bin/
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/sluice ./cmd/sluice
	$(GO) build -trimpath -o $(BIN)/testbed ./testbed/cmd/testbed
	$(GO) build -trimpath -o $(BIN)/otlpreceiver ./testbed/cmd/otlpreceiver

quickstart-filter: ## the quickstart's Wasm filter, from examples/filters/go (Go toolchain only)
	cd examples/filters/go && GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o ../../quickstart/filters/abrouter.wasm ./abrouter

run: build quickstart-filter ## build, start the OTLP receiver and demo upstreams, serve examples/quickstart
	./examples/quickstart/run.sh

test: lint test-go fuzz ## everything CI runs

test-go:
	$(GO) test -count=1 -timeout 20m ./...

fuzz: ## each fuzz target for a short, fixed time
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./hcl
	$(GO) test -run '^$$' -fuzz '^FuzzNormalizePath$$' -fuzztime $(FUZZTIME) ./engine
	$(GO) test -run '^$$' -fuzz '^FuzzRouter$$' -fuzztime $(FUZZTIME) ./engine
	$(GO) test -run '^$$' -fuzz '^FuzzConflictingFraming$$' -fuzztime $(FUZZTIME) ./engine

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench: ## Go benchmarks of the hot paths (load benchmarks against peers: testbed/)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 200ms ./engine/... ./filters/...

examples: ## build every example Wasm filter into examples/filters/build/<lang>/<name>.wasm
	$(MAKE) -C sdk examples

clean:
	rm -rf $(BIN)
