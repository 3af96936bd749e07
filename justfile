# otabake developer tasks. `just --list` shows them all.

version := `git describe --always --dirty 2>/dev/null || echo dev`
ldflags := "-s -w -X github.com/otabake/otabake/internal/cli.Version=" + version + " -X github.com/otabake/otabake/internal/agent/agentcli.Version=" + version

# Build otabake (with the cloud KMS signers: -tags kms, as released) and otabake-agent for
# this machine into bin/.
build:
    CGO_ENABLED=0 go build -tags kms -trimpath -ldflags '{{ldflags}}' -o bin/ ./cmd/...

# Run the test suite (the same command .ci/run uses).
test:
    go test ./...

# gofmt, go vet and shellcheck.
lint:
    test -z "$(gofmt -l $(git ls-files '*.go'))"
    go vet ./...
    GOOS=linux GOARCH=arm GOARM=7 go vet ./...
    shellcheck scripts/*.sh scripts/bench/*.sh

# otabake-agent release artifacts for VERSION: static, reproducible binaries for amd64, arm64,
# armv7 and armhf (ARMv6) and their SHA256SUMS in build/agent/vVERSION/. Unchanged files are
# not rewritten.
agent-artifacts VERSION:
    go run ./cmd/otabake agent build --version {{VERSION}} --output build/agent/v{{VERSION}}

# Pin VERSION's checksums in the otabake-agent Bakery recipe and make it the recipe's default:
# the release commit. The release workflow rebuilds from the tag with the same Go (1.26.8,
# .github/workflows/release.yml) and checks these pins.
pin-agent VERSION: (agent-artifacts VERSION)
    install -D -m 0644 build/agent/v{{VERSION}}/SHA256SUMS recipes/otabake-agent/files/releases/{{VERSION}}.sha256
    sed -i 's/^version = { default = "[^"]*" }/version = { default = "{{VERSION}}" }/' recipes/otabake-agent/recipe.toml
    grep -q '^version = { default = "{{VERSION}}" }' recipes/otabake-agent/recipe.toml

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
