#!/usr/bin/env bash
source "$(dirname "$0")/../lib.sh"
echo "1..0 # SKIP todo"
