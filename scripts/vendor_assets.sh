#!/usr/bin/env bash
# Refreshes the browser libraries the app serves from app/static/vendor/ (no CDN: a host without internet must
# show /docs, /redoc and /ui). Each comes from npm at the version pinned below, with its license beside it.
# Run it after changing a version; commit what it writes.
set -euo pipefail
cd "$(dirname "$0")/.."

VENDOR=app/static/vendor
SWAGGER_UI=swagger-ui-dist@5.35.0
REDOC=redoc@2.5.4
UPLOT=uplot@1.6.32  # the dashboard's charts (/ui): an ES module and its stylesheet

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# vendor PACKAGE@VERSION DIRECTORY FILE...: the package's FILEs (paths inside it) and its LICENSE into
# $VENDOR/DIRECTORY, with a VERSION file naming what was taken.
vendor() {
  local spec=$1 directory=$VENDOR/$2
  shift 2
  rm -rf "$tmp/package" "$directory"
  (cd "$tmp" && tar xzf "$(npm pack --silent "$spec")")
  mkdir -p "$directory"
  for file in "$@" LICENSE; do
    cp "$tmp/package/$file" "$directory/$(basename "$file")"
  done
  echo "$spec" > "$directory/VERSION"
}

vendor "$SWAGGER_UI" swagger-ui swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css favicon-32x32.png
vendor "$REDOC" redoc bundles/redoc.standalone.js bundles/redoc.standalone.js.LICENSE.txt
vendor "$UPLOT" uplot dist/uPlot.esm.js dist/uPlot.min.css
