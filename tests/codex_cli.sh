#!/usr/bin/env bash
# Codex CLI through the gateway: `codex exec "say hi"` with a model provider whose base_url is
# the gateway and wire_api = "responses". Run by tests/it/responses.rs (codex_cli_says_hi).
#
# Usage: tests/codex_cli.sh BASE_URL API_KEY MODEL
#   BASE_URL  the gateway's /v1 (e.g. http://127.0.0.1:8080/v1); MODEL a model the key may use.
# Codex comes from $CODEX_BIN when set, else from `npx --yes @openai/codex@$CODEX_VERSION`.
# Prints Codex's final message on stdout. Exits 77 (skipped, with a note on stderr) when there
# is no npx or Codex cannot be fetched; any other non-zero status is a failure.
set -euo pipefail

base_url=$1 api_key=$2 model=$3
version=${CODEX_VERSION:-0.171.0}

if [[ -n ${CODEX_BIN:-} ]]; then
  codex=("$CODEX_BIN")
elif command -v npx >/dev/null; then
  codex=(npx --yes "@openai/codex@$version")
else
  echo "skip: npx not found; install Node.js to run the Codex CLI check" >&2
  exit 77
fi
if ! timeout 300 "${codex[@]}" --version >/dev/null 2>&1; then
  echo "skip: Codex CLI could not be started (${codex[*]}): is the npm registry reachable?" >&2
  exit 77
fi

home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
mkdir -p "$home/codex" "$home/work"
# Built-in web search and the multi-agent tool namespace are off: a route without the Responses
# API (here the gateway's mock) refuses tools it cannot carry with a 400 naming them.
cat >"$home/codex/config.toml" <<TOML
model = "$model"
model_provider = "switchyard"
web_search = "disabled"

[features]
multi_agent = false

[model_providers.switchyard]
name = "Switchyard"
base_url = "$base_url"
env_key = "SWITCHYARD_API_KEY"
wire_api = "responses"
TOML

cd "$home/work"
CODEX_HOME="$home/codex" SWITCHYARD_API_KEY="$api_key" \
  timeout 120 "${codex[@]}" exec --skip-git-repo-check "say hi" </dev/null
