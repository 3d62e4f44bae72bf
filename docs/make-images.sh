#!/usr/bin/env bash
# Remake the README's report page and annotated AWS frame from nothing but this repository and ../shared.
# Run from the repository root after `make setup` (about 20 s on 2 cores); needs pdftoppm (Debian: poppler-utils).
set -euo pipefail
CT=.venv/bin/cloud-training
B=build/report-demo
rm -rf "$B"

# a held-out set the demo model never saw (60 synthetic frames, seed 2027), half of it as the manifest to evaluate
$CT synth --out $B/synth --images 60 --seed 2027
$CT manifest prepare $B/synth/manifests/ --discard $B/synth/manifests/discard.txt --class-from color,object \
    --class-map "blue box=0,yellow box=1" --validation-fraction 0.5 --seed 0 --out $B/prepared
$CT evaluate models/demo $B/prepared/validation.manifest --report $B/report.pdf --html $B/report --pages 8
pdftoppm -singlefile -f 1 -l 1 -r 80 -png $B/report.pdf docs/report-summary   # page 1: the summary
pdftoppm -singlefile -f 5 -l 5 -r 60 -png $B/report.pdf docs/report-worst     # page 5: the worst image

# the real AWS blue-box frame through the device's own detector, drawn, then downscaled for the page
.venv/bin/edge-runtime detect --model models/demo --score-threshold 0.3 --annotate $B/annotated \
    ../shared/fixtures/aws-sample/images/blue_box_1_000133.jpg > $B/annotated.json
.venv/bin/python -c "import cv2; cv2.imwrite('docs/annotated-blue-box.jpg', cv2.resize(cv2.imread('$B/annotated/blue_box_1_000133.jpg'), (640, 360), interpolation=cv2.INTER_AREA), [cv2.IMWRITE_JPEG_QUALITY, 80])"
ls -l docs/report-summary.png docs/report-worst.png docs/annotated-blue-box.jpg
