#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian/Ubuntu machine (Node >= 20 already there) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq mosquitto mosquitto-clients python3-paho-mqtt pebble certbot redis-server yamllint >/dev/null
# kubectl renders the kustomization offline; Debian ships it as kubernetes-client (skip if a kubectl exists).
command -v kubectl >/dev/null || $SUDO apt-get install -y -qq kubernetes-client >/dev/null
npm ci --no-audit --no-fund
npm run lint
npm test
