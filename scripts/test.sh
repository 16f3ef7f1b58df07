#!/usr/bin/env bash
# shoal's test command: installs what the tests need (idempotent, cached outside the clone in
# ${SHOAL_CACHE:-$HOME/.cache/shoal}), then format check, clippy and the test suite.
#
#   bash scripts/test.sh
#
# CI runs this through .ci/run. Exits non-zero on the first failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export SHOAL_CACHE="${SHOAL_CACHE:-$HOME/.cache/shoal}"
export SHOAL_LOCALSTACK_VENV="${SHOAL_LOCALSTACK_VENV:-$SHOAL_CACHE/localstack-venv}"
export SHOAL_TEST_VENV="${SHOAL_TEST_VENV:-$SHOAL_CACHE/test-venv}"
export SHOAL_TEST_PYTHON="${SHOAL_TEST_PYTHON:-$SHOAL_TEST_VENV/bin/python}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SHOAL_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Dummy credentials for the tests' private LocalStack (shoal_tests::init_test_env sets the same
# when they are unset; exporting them here means the tests never have to change their own env).
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"

started=$SECONDS
section() {
  printf '\n==== %s  [+%ss]\n' "$*" "$((SECONDS - started))"
}
trap 'rc=$?; if (( rc != 0 )); then printf "\n==== FAILED (exit %s) after %ss\n" "$rc" "$((SECONDS - started))"; fi' EXIT

section "toolchain"
rustc --version
cargo --version
rustup target add wasm32-wasip2

section "LocalStack (localstack/install.sh)"
bash localstack/install.sh

section "test Python venv (scripts/test-venv.sh)"
bash scripts/test-venv.sh

section "chromium for the dashboard's browser tests (scripts/chromium.sh)"
bash scripts/chromium.sh

section "environment"
echo "SHOAL_CACHE=$SHOAL_CACHE"
echo "SHOAL_LOCALSTACK_VENV=$SHOAL_LOCALSTACK_VENV"
echo "SHOAL_TEST_PYTHON=$SHOAL_TEST_PYTHON"
echo "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"

section "cargo fmt --check"
cargo fmt --check

section "cargo clippy --all-targets -- -D warnings (default members)"
cargo clippy --all-targets -- -D warnings

section "cargo build --bins (the processes executor runs the shoal-worker binary)"
cargo build --bins

section "cargo test (default members)"
log="$(mktemp)"
cargo test 2>&1 | tee "$log"
# One closing line for the whole suite: the sum over every test binary.
passed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -oE '[0-9]+ failed;' "$log" | awk '{s += $1} END {print s + 0}')
rm -f "$log"

section "all checks passed in $((SECONDS - started))s"
echo "tests: ${passed} passed, ${failed} failed"
