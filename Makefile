# Thin wrapper for the README's two commands; the work is in scripts/ and CMake.
.PHONY: all bootstrap build run test clean format

all: build

bootstrap:
	@scripts/bootstrap.sh

build: bootstrap
	@scripts/build.sh build
	@if [ -x scripts/build-frontend.sh ]; then scripts/build-frontend.sh; fi

run: build
	@scripts/run.sh

test:
	@scripts/test.sh

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-asan build-fuzz
