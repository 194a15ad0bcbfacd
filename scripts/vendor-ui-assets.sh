#!/bin/sh
# Vendor the control plane's browser assets from the npm registry into the package, so the
# UI works with no network at run time (ADR 0501). The copied files are committed; re-run
# this script only to upgrade (bump the pinned versions below, then review the diff).
#
#   htmx.org   2.x  - partial updates and polling (4.x changed attribute inheritance/events)
#   uplot      1.6  - small canvas time-series charts
#   codemirror 5.65 - the last CodeMirror with prebuilt non-module files; 6 needs a bundler
#
# See docs/adr/0501-ui-server-rendered-htmx.md.
set -eu

HTMX_VERSION=2.0.11
UPLOT_VERSION=1.6.32
CODEMIRROR_VERSION=5.65.21

here=$(cd "$(dirname "$0")" && pwd)
dest="$here/../src/treadle/ui/static/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

cd "$work"
# npm pack only downloads the published tarballs: no install scripts run.
npm pack --silent "htmx.org@$HTMX_VERSION" "uplot@$UPLOT_VERSION" \
    "codemirror@$CODEMIRROR_VERSION" >/dev/null
for t in *.tgz; do
    mkdir -p "${t%.tgz}"
    tar -xzf "$t" -C "${t%.tgz}"
done

htmx="$work/htmx.org-$HTMX_VERSION/package"
uplot="$work/uplot-$UPLOT_VERSION/package"
cm="$work/codemirror-$CODEMIRROR_VERSION/package"

rm -rf "$dest"
mkdir -p "$dest/htmx" "$dest/uplot" "$dest/codemirror/mode/javascript" \
    "$dest/codemirror/mode/python"
cp "$htmx/dist/htmx.min.js" "$htmx/LICENSE" "$dest/htmx/"
cp "$uplot/dist/uPlot.iife.min.js" "$uplot/dist/uPlot.min.css" "$uplot/LICENSE" "$dest/uplot/"
cp "$cm/lib/codemirror.js" "$cm/lib/codemirror.css" "$cm/LICENSE" "$dest/codemirror/"
cp "$cm/mode/javascript/javascript.js" "$dest/codemirror/mode/javascript/"
cp "$cm/mode/python/python.js" "$dest/codemirror/mode/python/"

cat > "$dest/VERSIONS" <<VERSIONS
htmx.org $HTMX_VERSION
uplot $UPLOT_VERSION
codemirror $CODEMIRROR_VERSION
VERSIONS
echo "vendor-ui-assets.sh: vendored into $dest"
cat "$dest/VERSIONS"
