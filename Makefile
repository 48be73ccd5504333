# Release builds. Day-to-day work needs only `go build ./cmd/flowgate` and
# ./scripts/test; this file stamps the version into the binary and builds
# the release archives.
#
#   make build                 ./flowgate for this machine
#   make release VERSION=v1.2.3   dist/flowgate_v1.2.3_linux_{amd64,arm64}.tar.gz + SHA256SUMS

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
PKG     := github.com/flowgate/flowgate/internal/buildinfo
# -trimpath keeps build paths out of the binary; -s -w drops the symbol
# table. CGO is off: the SQLite driver is pure Go, so the binary is static.
LDFLAGS := -s -w -X $(PKG).version=$(VERSION) -X $(PKG).commit=$(COMMIT)
PLATFORMS := linux/amd64 linux/arm64

.PHONY: build release clean

build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o flowgate ./cmd/flowgate

release:
	rm -rf dist && mkdir -p dist
	set -e; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; name=flowgate_$(VERSION)_$${os}_$${arch}; \
		mkdir -p dist/$$name; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath -ldflags "$(LDFLAGS)" -o dist/$$name/flowgate ./cmd/flowgate; \
		cp README.md dist/$$name/; \
		tar -C dist -czf dist/$$name.tar.gz $$name; \
		rm -rf dist/$$name; \
	done
	cd dist && sha256sum *.tar.gz > SHA256SUMS

clean:
	rm -rf dist flowgate
