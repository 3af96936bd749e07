# otabake developer tasks. `just --list` shows them all.

version := `git describe --always --dirty 2>/dev/null || echo dev`
ldflags := "-s -w -X github.com/otabake/otabake/internal/cli.Version=" + version + " -X github.com/otabake/otabake/internal/agent/cli.Version=" + version

# Build otabake and otabake-agent for this machine into bin/.
build:
    CGO_ENABLED=0 go build -trimpath -ldflags '{{ldflags}}' -o bin/ ./cmd/...

# Run the test suite (the same command .ci/run uses).
test:
    go test ./...

# gofmt, go vet and shellcheck.
lint:
    test -z "$(gofmt -l $(git ls-files '*.go'))"
    go vet ./...
    GOOS=linux GOARCH=arm GOARM=7 go vet ./...
    shellcheck scripts/*.sh scripts/bench/*.sh

# Static otabake-agent binaries for every device architecture, with their sizes.
agent-all:
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p bin
    for arch in amd64 arm64 arm; do
        out=bin/otabake-agent-$arch
        [ "$arch" = arm ] && out=bin/otabake-agent-armhf
        CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOARM=7 go build -trimpath -ldflags '{{ldflags}}' -o "$out" ./cmd/otabake-agent
        printf '%-28s %s bytes\n' "$out" "$(stat -c %s "$out")"
    done

# Full release of the example project into the embedded local Hub.
demo:
    go run ./cmd/otabake --project-dir examples/quickstart release

# Upload benchmark: upload-release of a 1 GiB artifact vs sha256sum && cp.
bench-upload:
    scripts/bench/upload.sh

# Bundle benchmarks against casync.
bench-bundle:
    scripts/bench/bundle.sh

# Disk image benchmark against genimage.
bench-image:
    scripts/bench/image.sh

# All benchmarks.
bench: bench-upload bench-bundle bench-image
