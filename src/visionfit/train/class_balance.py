"""Per-class loss weights for imbalanced training data (`--class-weights`).

    weights = class_weights(prepared.train.labels, num_classes, "auto")   # tensor K, or None for "none"
    task = SingleLabel(class_weights=weights)

Two rules, both computed from the training labels only:
  - auto: inverse frequency, w_c proportional to 1 / n_c (sklearn's "balanced");
  - effective: Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of Samples":
    w_c proportional to (1 - beta) / (1 - beta^n_c), with beta = EFFECTIVE_BETA.

Both are scaled so the mean weight over the training samples is 1 (sum_c n_c w_c = N):
the weighted loss then sits on the plain loss's scale, so the learning rate that suits a
plain run suits a weighted one. (torch's weighted mean over hard labels divides by the
weights anyway; soft targets from label smoothing or MixUp do not, so the scale matters.)
A class with no training images gets weight 0: it never is a target, there is nothing to weigh.
"""
import torch

# Cui et al. report 0.9999 as the best beta for softmax cross-entropy on long-tailed CIFAR-10
# (classes of 5,000 down to 25-500 images). The effective number saturates near 1 / (1 - beta)
# images: with 0.999 every class over ~2,000 images looks the same size, which flattens the
# weights of MNIST/CIFAR-sized classes (6,000 vs 300 images: 3.9x instead of 20x); 0.9999
# keeps them apart up to ~10,000 images (15x) while still damping inverse frequency's extremes.
EFFECTIVE_BETA = 0.9999


def class_weights(labels: torch.Tensor, num_classes: int, rule: str) -> torch.Tensor | None:
    """Loss weight per class (float32, K) from training labels, or None for rule "none"."""
    if rule == "none":
        return None
    counts = torch.bincount(torch.as_tensor(labels, dtype=torch.long), minlength=num_classes).double()
    present = counts > 0
    raw = torch.zeros(num_classes, dtype=torch.float64)
    if rule == "auto":
        raw[present] = 1 / counts[present]
    elif rule == "effective":
        raw[present] = (1 - EFFECTIVE_BETA) / (1 - EFFECTIVE_BETA ** counts[present])
    else:
        raise ValueError(f"unknown class-weight rule {rule!r}")
    return (raw * counts.sum() / (raw * counts).sum()).float()


def describe(weights: torch.Tensor, class_names) -> str:
    """One line for the run log: the lightest and heaviest classes' weights."""
    order = weights.argsort()
    low, high = int(order[0]), int(order[-1])
    return (f"{weights[low]:.3g} ({class_names[low]}) to {weights[high]:.3g} ({class_names[high]}), "
            f"mean over training images 1")
