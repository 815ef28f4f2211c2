# Sluice — make run serves the quickstart; make test runs every test. See README.md.
GO       ?= go
BIN      := bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
# The build time is the commit's time, not the clock's: two builds of one commit are identical.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
LDFLAGS  := -s -w -buildid= -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildTime=$(SOURCE_DATE_EPOCH)
# make dist's targets: static binaries (CGO off) for each, with SHA256SUMS and an SBOM.
DIST     := bin/dist
PLATFORMS := linux/amd64 linux/arm64 darwin/arm64
# The gateway is built with profile-guided optimization from this CPU profile of its request path
# under the benchmark's load (make pgo refreshes it; RATIONALE.md says why and what it buys).
PGO      := cmd/sluice/release.pgo
# grpcnotrace leaves out grpc's x/net/trace debug pages (never enabled or served by sluice): they
# render with html/template, whose reflective method calls make the linker keep every exported
# method of every type, 18 MB of the binary and, on Linux with large folios, ~9 MiB of idle RSS
# (RATIONALE.md: "Where did the idle RSS go…").
TAGS     := grpcnotrace
# A count of executions, not a duration: with a duration, Go 1.26's fuzz coordinator can report a
# bare "context deadline exceeded" failure when the time runs out while a worker is mid-input
# (golang/go#75804, fixed in Go 1.27). 15000 executions take 5-15 s per target here.
FUZZTIME ?= 15000x

.PHONY: build dist image quickstart-filter proxywasm-example run examples test test-go fuzz lint bench bench-full bench-go pgo clean

build: ## build the gateway and the testbed servers (and examples/grpc's grpcdemo) into bin/
	$(GO) build -trimpath -tags $(TAGS) -pgo=$(PGO) -ldflags '$(LDFLAGS)' -o $(BIN)/sluice ./cmd/sluice
	$(GO) build -trimpath -o $(BIN)/testbed ./testbed/cmd/testbed
	$(GO) build -trimpath -o $(BIN)/otlpreceiver ./testbed/cmd/otlpreceiver
	$(GO) build -trimpath -o $(BIN)/grpcdemo ./testbed/cmd/grpcdemo

dist: ## static, reproducible release binaries for $(PLATFORMS) into $(DIST)/, with SHA256SUMS and an SPDX SBOM
	rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; for p in $(PLATFORMS); do os=$${p%/*}; arch=$${p#*/}; echo "build $$os/$$arch"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -buildvcs=false -tags $(TAGS) -pgo=$(PGO) \
	    -ldflags '$(LDFLAGS)' -o $(DIST)/sluice-$(VERSION)-$$os-$$arch ./cmd/sluice; \
	done
	cd testbed/ship && $(GO) run ./cmd/sbom -version $(VERSION) -commit '$(COMMIT)' -time $(SOURCE_DATE_EPOCH) \
	  -o $(abspath $(DIST))/sluice-$(VERSION).spdx.json $(abspath $(DIST))/sluice-$(VERSION)-*
	cd $(DIST) && sha256sum sluice-$(VERSION)-* > SHA256SUMS && cat SHA256SUMS

image: ## the container image (scratch, CA certificates, non-root user, the linux/amd64 binary) as $(BIN)/sluice-image.tar, no Docker needed
	mkdir -p $(BIN)
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -buildvcs=false -tags $(TAGS) -pgo=$(PGO) -ldflags '$(LDFLAGS)' -o $(BIN)/linux-amd64/sluice ./cmd/sluice
	cd testbed/ship && $(GO) run ./cmd/mkimage -binary $(abspath $(BIN))/linux-amd64/sluice -version $(VERSION) \
	  -commit '$(COMMIT)' -time $(SOURCE_DATE_EPOCH) -tag sluice:$(VERSION) -o $(abspath $(BIN))/sluice-image.tar

quickstart-filter: ## the quickstart's Wasm filter, from examples/filters/go (Go toolchain only)
	cd examples/filters/go && GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o ../../quickstart/filters/abrouter.wasm ./abrouter

proxywasm-example: ## examples/proxywasm's module: the AssemblyScript proxy-wasm examples (node and npm)
	$(MAKE) -C sdk proxywasm OUT=$(CURDIR)/examples/filters/build

run: build quickstart-filter ## build, start the OTLP receiver and demo upstreams, serve examples/quickstart
	./examples/quickstart/run.sh

test: lint test-go fuzz ## everything CI runs

test-go:
	$(GO) test -count=1 -timeout 20m ./...
	cd testbed/ship && $(GO) test -count=1 -timeout 10m ./...

# Every fuzz target, each for a short, fixed time (go test runs one -fuzz target at a time).
FUZZ_TARGETS := ./hcl:FuzzLoad ./engine:FuzzNormalizePath ./engine:FuzzRouter ./engine:FuzzRawPath \
	./engine:FuzzConflictingFraming ./engine:FuzzCanonicalHost ./filters/jwt:FuzzParse ./filters/jwt:FuzzFilter \
	./filters/wasm:FuzzHostBuffers ./filters/wasm/interrupt:FuzzInstrument ./filters/compress:FuzzNegotiate \
	./filters/cache:FuzzDirectives ./engine/secret:FuzzHCLLine ./filters/grpcweb:FuzzDecodeText \
	./filters/keyauth:FuzzKeyAuth ./filters/cors:FuzzPreflight ./filters/basicauth:FuzzCredentials

fuzz: ## each fuzz target for $(FUZZTIME) (executions, or a duration such as 1m)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t##*:}; echo "fuzz $$pkg $$fn"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# staticcheck's pinned version (.ci/run installs this one). make lint runs the staticcheck on PATH,
# else the one in $(go env GOPATH)/bin; without either it is skipped, except when CI is set.
STATICCHECK_PKG := honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: ## gofmt, go vet and staticcheck (skipped when staticcheck is not installed, unless CI is set)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd testbed/ship && $(GO) vet ./...
	@sc=$$(command -v staticcheck || echo "$$($(GO) env GOPATH | cut -d: -f1)/bin/staticcheck"); \
	if [ ! -x "$$sc" ]; then \
	  if [ -n "$$CI" ]; then echo "lint: staticcheck is not installed (CI is set): $(GO) install $(STATICCHECK_PKG)"; exit 1; fi; \
	  echo "lint: staticcheck skipped, not on PATH nor in GOPATH/bin ($(GO) install $(STATICCHECK_PKG))"; exit 0; \
	fi; \
	echo "$$sc ./..."; "$$sc" ./... && cd testbed/ship && echo "cd testbed/ship && $$sc ./..." && "$$sc" ./...

bench: ## load benchmark against nginx, HAProxy and a fasthttp floor, HTTP/2 h2c rows, quick mode (~10 min; testbed/results/)
	./testbed/bench/run.sh quick

bench-full: ## adds 256 connections, 16 KiB JSON with compression vs nginx gzip, each filter alone, fixed-rate latency, HTTP/2 over TLS, TLS keep-alive and handshakes, gRPC calls vs direct and nginx grpc_pass (~40 min)
	./testbed/bench/run.sh full

pgo: ## refresh $(PGO) from profiles of the request path under load (~2 min; run it alone)
	./testbed/bench/pgo.sh

bench-go: ## Go benchmarks of the hot paths, with allocations
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 200ms ./engine/... ./filters/...

examples: ## build every example Wasm filter into examples/filters/build/<lang>/<name>.wasm
	$(MAKE) -C sdk examples

clean:
	rm -rf $(BIN)
