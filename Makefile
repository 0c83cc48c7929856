# Makefile for the RSerPool registrar (ENRP server), its ASAP libraries and tools.
# `make run` starts a single-node registrar; `make test` runs every test.

GO        ?= go
BIN       ?= bin
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
LDFLAGS   ?= -X github.com/rserpool-go/registrar/registrar.Version=$(VERSION) \
             -X github.com/rserpool-go/registrar/cmd/internal/cli.Version=$(VERSION) \
             -X github.com/rserpool-go/registrar/cmd/internal/cli.Commit=$(COMMIT)
TESTFLAGS ?=
TIMEOUT   ?= 20m
FUZZTIME  ?= 30s
SHARED    ?= $(abspath ../shared)
export SHARED

.DEFAULT_GOAL := test
.PHONY: build run install uninstall test test-unit test-sctp test-lab test-captures test-interop test-stress bench-sctp race fuzz bench lint tidy clean

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

run: build
	./$(BIN)/registrar agent

# install puts the binaries, the systemd unit, a sample config (kept if one
# is there already) and bash/zsh completions under DESTDIR/PREFIX:
#   make install                          # /usr/local/bin, /usr/local/etc/registrar, ...
#   make install PREFIX=/usr SYSCONFDIR=/etc DESTDIR=/tmp/pkg   # for a package
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
SYSCONFDIR ?= $(PREFIX)/etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/registrar $(DESTDIR)$(UNITDIR) $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	install -m 0755 $(BIN)/registrar $(BIN)/rsp $(DESTDIR)$(BINDIR)/
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' docs/deploy/registrar.service > $(DESTDIR)$(UNITDIR)/registrar.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/registrar.service
	test -e $(DESTDIR)$(SYSCONFDIR)/registrar/registrar.json || install -m 0644 docs/deploy/registrar.json $(DESTDIR)$(SYSCONFDIR)/registrar/registrar.json
	for b in registrar rsp; do \
	  $(BIN)/$$b completion bash > $(DESTDIR)$(BASHCOMPDIR)/$$b && \
	  $(BIN)/$$b completion zsh > $(DESTDIR)$(ZSHCOMPDIR)/_$$b || exit 1; \
	done
	chmod 0644 $(DESTDIR)$(BASHCOMPDIR)/registrar $(DESTDIR)$(BASHCOMPDIR)/rsp $(DESTDIR)$(ZSHCOMPDIR)/_registrar $(DESTDIR)$(ZSHCOMPDIR)/_rsp

# uninstall removes what install put there, except the config.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/registrar $(DESTDIR)$(BINDIR)/rsp $(DESTDIR)$(UNITDIR)/registrar.service \
	  $(DESTDIR)$(BASHCOMPDIR)/registrar $(DESTDIR)$(BASHCOMPDIR)/rsp $(DESTDIR)$(ZSHCOMPDIR)/_registrar $(DESTDIR)$(ZSHCOMPDIR)/_rsp

# test runs everything: unit, in-process, end-to-end (built binaries), wire
# conformance with tshark, network-namespace tests (as root), and the SCTP and
# RSPLIB interop tests (natively or inside the SCTP lab VM). Every stage runs
# even when an earlier one failed; the last lines are one summary line per
# stage, and the exit status is non-zero if any failed (.ci/stages).
test:
	@bash .ci/stages build=build unit=test-unit sctp-lab=test-lab captures=test-captures

# Tests always run (-count=1): a cached pass proves nothing about this run.
test-unit: build
	E2E_BIN=$(abspath $(BIN)) $(GO) test -race -count=1 $(TESTFLAGS) -timeout $(TIMEOUT) ./...

# test-sctp runs the tests that need kernel SCTP (names matching SCTP_RUN in
# SCTP_PKGS) with RSP_REQUIRE_SCTP=1: natively where /proc/net/protocols lists
# SCTP, otherwise in one boot of the SCTP lab VM ($(SHARED)/tools/sctp-lab,
# built on first use). Add packages to SCTP_PKGS; see .ci/sctp-tests.
SCTP_PKGS ?= ./transport/... ./registrar ./asap/pu ./cmd/rsp
SCTP_RUN  ?= SCTP|Interop
CAPTURES  ?= $(abspath $(BIN))/captures
# test-sctp also runs the RSPLIB interop tests (registrar, -run Interop) in
# the same VM boot, then checks their packet captures with tshark on the host.
test-sctp: test-lab
	$(MAKE) --no-print-directory test-captures

# The per-package timeout is a safety net above the registrar package's
# lab tests (about 150 s, 230 s with both host cores busy), not a budget.
test-lab: build
	rm -rf $(CAPTURES)
	GO=$(GO) bash .ci/sctp-tests -bin -timeout 420s -captures $(CAPTURES) -run '$(SCTP_RUN)' $(SCTP_PKGS)

test-captures:
	RSP_INTEROP_CAPTURES=$(CAPTURES) $(GO) test -count=1 -run '^TestInteropCaptures$$' -v ./registrar

# test-interop runs only the RSPLIB interop tests (and their capture check).
test-interop: build
	rm -rf $(CAPTURES)
	GO=$(GO) bash .ci/sctp-tests -bin -captures $(CAPTURES) -run 'Interop' ./registrar
	RSP_INTEROP_CAPTURES=$(CAPTURES) $(GO) test -count=1 -run '^TestInteropCaptures$$' -v ./registrar

# bench-sctp measures rsp bench over SCTP against RSPLIB's registrar and
# ours side by side in one lab boot (TestLabBench_VsRSPLIB), with a pprof
# profile of ours; the results land in $(CAPTURES) (bench.json,
# bench-*.pprof). docs/performance.md records them.
bench-sctp: build
	rm -rf $(CAPTURES)
	GO=$(GO) bash .ci/sctp-tests -bin -timeout 600s -captures $(CAPTURES) -run 'TestLabBench_VsRSPLIB' ./registrar

# test-stress runs the whole `make test` N times, each from a fresh clone of
# HEAD (with ../shared beside it), with both cores kept busy by a CPU hog
# when LOAD=1, and reports which tests ever failed (.ci/stress).
N    ?= 5
LOAD ?= 1
test-stress:
	bash .ci/stress -n $(N) -load $(LOAD)

race:
	$(GO) test -race $(TESTFLAGS) -timeout $(TIMEOUT) ./...

# fuzz runs every Fuzz target for FUZZTIME each (go test -fuzz takes one target at a time).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(TESTFLAGS) ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if command -v staticcheck >/dev/null; then staticcheck ./...; fi

tidy:
	$(GO) mod tidy
	@git diff --exit-code go.mod go.sum || (echo "go.mod/go.sum drifted: commit the tidy result"; exit 1)

clean:
	rm -rf $(BIN)
