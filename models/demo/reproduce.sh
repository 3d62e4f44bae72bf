#!/usr/bin/env bash
# Rebuild models/demo from nothing: synthetic data, the AWS sample's preparation and offline augmentation, local
# training, conversion, and evaluation on a held-out synthetic set made with a seed never used in training.
# Also trains the same hyperparameters without the offline augmentation (the blog's experiment) and evaluates both.
# Run from the repository root after `make setup`: bash models/demo/reproduce.sh   (about 20 minutes on 2 cores)
set -euo pipefail
CT=.venv/bin/cloud-training
B=build/demo
HYPER=(base_network=tiny-cnn num_classes=2 image_shape=192 mini_batch_size=32 epochs=6
       optimizer=sgd learning_rate=0.01 momentum=0.9 weight_decay=0.0005 lr_scheduler_step=5 lr_scheduler_factor=0.1
       use_pretrained_model=0)
rm -rf "$B"

# 1. data: 1000 frames (seed 11) prepared as the AWS sample's were (join, discard, relabel, 90/10 split), then the
#    four offline transforms on the train split only (x5)
$CT synth --out $B/synth --images 1000 --seed 11
$CT manifest prepare $B/synth/manifests/ --discard $B/synth/manifests/discard.txt --class-from color,object \
    --class-map "blue box=0,yellow box=1" --validation-fraction 0.1 --seed 0 --out $B/prepared
$CT augment $B/prepared/train.manifest --out $B/prepared/train-augmented.manifest --images-out $B/augmented

# 2. held-out set: 300 fresh frames from seed 2027, never seen in training; all of them are evaluated
$CT synth --out $B/heldout --images 300 --seed 2027
$CT manifest prepare $B/heldout/manifests/ --discard $B/heldout/manifests/discard.txt --class-from color,object \
    --class-map "blue box=0,yellow box=1" --validation-fraction 0.5 --seed 0 --out $B/heldout-prepared
cat $B/heldout-prepared/train.manifest $B/heldout-prepared/validation.manifest > $B/heldout-prepared/all.manifest

# 3. train with the offline augmentation (the demo model), timed
start=$(date +%s)
$CT train --train $B/prepared/train-augmented.manifest --validation $B/prepared/validation.manifest \
    --out $B/run-augmented --seed 0 "${HYPER[@]}"
echo "training with augmentation took $(( $(date +%s) - start )) s"
$CT convert $B/run-augmented/model.tar.gz --out $B/demo-model --class-names "blue box,yellow box" --name demo --force
cp $B/demo-model/deploy_model_algo_1-symbol.json $B/demo-model/deploy_model_algo_1-0000.params $B/demo-model/model.onnx \
    $B/demo-model/samples.npz $B/demo-model/model.json models/demo/
$CT evaluate models/demo $B/heldout-prepared/all.manifest --json > $B/heldout-augmented.json

# 4. the same hyperparameters without the offline augmentation, evaluated on the same held-out set
start=$(date +%s)
$CT train --train $B/prepared/train.manifest --validation $B/prepared/validation.manifest \
    --out $B/run-plain --seed 0 "${HYPER[@]}"
echo "training without augmentation took $(( $(date +%s) - start )) s"
$CT convert $B/run-plain/model.tar.gz --out $B/plain-model --class-names "blue box,yellow box" --name plain --force
$CT evaluate $B/plain-model $B/heldout-prepared/all.manifest --json > $B/heldout-plain.json

python3 -c "import json; a=json.load(open('$B/heldout-augmented.json')); p=json.load(open('$B/heldout-plain.json')); \
print(f\"held-out VOC07 mAP: with augmentation {a['mAP']:.4f}, without {p['mAP']:.4f}\")"
