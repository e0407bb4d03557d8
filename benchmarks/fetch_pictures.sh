#!/usr/bin/env bash
# Pictures the scikit-image wheel lacks, for still_look.py and flicker.py: a painting, small bright lights on a dark
# ground, a painted landscape and colour foliage, from Debian's plasma-workspace-wallpapers (KDE's wallpapers, free
# licences: see their metadata.json). Needs a Debian or Ubuntu machine with apt; writes benchmarks/pictures/ (not
# committed) and prints the --pictures / --clips values that use them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/pictures"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download plasma-workspace-wallpapers >/dev/null
dpkg-deb -x plasma-workspace-wallpapers_*.deb root
walls=root/usr/share/wallpapers
mkdir -p "$out"
cp "$walls/SafeLanding/contents/images/5120x2880.jpg" "$out/painting.jpg"   # a painted landscape, bright colours
cp "$walls/MilkyWay/contents/images/5120x2880.png" "$out/lights.png"       # small bright lights on a dark ground
cp "$walls/Autumn/contents/images/1920x1080.jpg" "$out/autumn.jpg"          # a painting in broad strokes
cp "$walls/OneStandsOut/contents/images/1920x1080.jpg" "$out/foliage.jpg"   # moss, in colour
for name in SafeLanding MilkyWay Autumn OneStandsOut; do
  cp "$walls/$name/metadata.json" "$out/$name.metadata.json" 2>/dev/null || true
done
echo "wrote $out"
echo "pictures: painting=$out/painting.jpg,lights=$out/lights.png,autumn=$out/autumn.jpg,foliage=$out/foliage.jpg"
