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

# The build (vite 8) needs Node.js 20.19 or later; Debian 12 and Ubuntu
# 24.04 ship 18. Say which is needed rather than fail inside the build.
node_ok="$(node -e 'const [a,b]=process.versions.node.split(".").map(Number); console.log(a>22||(a===22&&b>=12)||(a===20&&b>=19)||a===21?1:0)' 2>/dev/null || echo 0)"
if [ "$node_ok" != 1 ]; then
  echo "ui: Node.js ≥ 20.19 (or ≥ 22.12) is required to build the web UI; found $(node --version 2>/dev/null || echo none)." >&2
  echo "ui: install a current one (e.g. https://nodejs.org/en/download or NodeSource's packages for Debian/Ubuntu) and run again." >&2
  exit 1
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
