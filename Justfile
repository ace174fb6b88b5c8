# Everyday recipes. `npm i -g rust-just` gives the `just` binary; nothing here is required by the README commands.

default: build test

# Build the dib binary into ./bin/dib.
build:
    go build -o bin/dib ./cmd/dib

# Run all tests (the README's test command).
test:
    go test -timeout 60m ./...

# gofmt, go vet.
lint:
    test -z "$(gofmt -l $(git ls-files '*.go'))"
    go vet ./...

# Benchmarks of the compiler.
bench:
    go test -run '^$' -bench . -benchmem ./compiler/... ./spec/... ./runtime/qcow2/
    bash bench/vm-vs-mmdebstrap.sh

# Fuzz Dibfile loading for a while (default 5 minutes).
fuzz time="5m":
    go test -run '^$' -fuzz FuzzLoad -fuzztime {{time}} ./spec/...

# Regenerate golden files.
update:
    go test ./compiler ./compiler/blockdev ./compiler/element ./elements ./runtime/bootloader ./spec ./spec/dibyaml -update
