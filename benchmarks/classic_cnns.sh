#!/usr/bin/env bash
# The run behind docs/classic_cnns.md: the seven d2l CNNs on real MNIST, each with its d2l recipe
# (plain SGD, constant lr, Xavier init; per-net lr / batch size), on a CPU budget:
# 300 training images per class (3,000), 200 validation images per class of t10k (2,000),
# 2 epochs, and the 224-px nets (AlexNet, VGG, NiN) shrunk to 96 px, d2l's own size for GoogLeNet/ResNet.
#
#   bash benchmarks/classic_cnns.sh                      # writes runs/classic_cnns/results.{md,csv,png}
#   DATA=path/to/mnist bash benchmarks/classic_cnns.sh   # another copy of the MNIST IDX files
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${DATA:-../shared/datasets/mnist}"

.venv/bin/visionfit compare --data "$DATA" \
  --models lenet,lenet_bn,alexnet_d2l,vgg11_d2l,nin,googlenet_d2l,resnet18_d2l \
  --epochs 2 --max-per-class 300 --max-val-per-class 200 --max-image-size 96 \
  --device cpu --seed 0 --quiet --project runs --name classic_cnns

# The same recipe with the step budget the LeNets need (cheap at 28 px): all 60,000 training
# images for one epoch, 235 SGD steps instead of 24. Writes runs/classic_cnns_lenets/.
.venv/bin/visionfit compare --data "$DATA" --models lenet,lenet_bn \
  --epochs 1 --max-val-per-class 200 \
  --device cpu --seed 0 --quiet --project runs --name classic_cnns_lenets

# Run 3 (the page's headline): one Adam recipe for every net, 126 steps each, on a quiet machine.
.venv/bin/visionfit compare --data "$DATA" \
  --models lenet,lenet_bn,alexnet_d2l,vgg11_d2l,nin,googlenet_d2l,resnet18_d2l \
  --optimizer adam --lr 0.001 --batch-size 64 --epochs 2 --max-per-class 400 \
  --max-val-per-class 100 --max-image-size 96 --device cpu --seed 0 --quiet --project runs --name classic_cnns_adam
