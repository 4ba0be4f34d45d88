#!/usr/bin/env bash
# Builds the web UI (web/, npm) into web/dist, which the ioc binary embeds,
# when it is missing or older than its sources. Installs Node.js and npm
# with apt when absent. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/../../web"

if ! command -v npm >/dev/null 2>&1; then
  echo "ui: installing nodejs and npm with apt-get"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi

if [ ! -d node_modules/.bin ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

stale=0
if [ ! -f dist/index.html ]; then
  stale=1
elif [ -n "$(find index.html vite.config.ts tsconfig.json package-lock.json src -newer dist/index.html -print -quit)" ]; then
  stale=1
fi
if [ "$stale" = 1 ]; then
  echo "ui: building the web UI (web/dist)"
  npm run --silent build
fi
