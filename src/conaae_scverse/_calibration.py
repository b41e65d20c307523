"""Label confidence of a modality without labels: temperature from agreement with the prior.

The classifier's probabilities are sharp for every cell the latent places in a population,
right or wrong: where the alignment swaps populations, a cell of the unlabelled modality is
labelled wrong with probability near 1. Without labels there its accuracy cannot be
measured, but it can be estimated: the label prior (:mod:`._label_prior`) is a second
prediction, made from the data before training, and the share of cells whose model label is
the prior's most likely label estimates how often the model is right. The classifier's
logits for that modality are divided by the temperature at which their mean largest
probability equals that share (temperature scaling, Guo et al. 2017, with the agreement in
place of held-out labels; a share below a uniform guess gives nearly uniform probabilities).
Temperatures only soften (>= 1): the model trains on the prior's confident labels, so high
agreement is no evidence of underconfidence. Softening keeps each cell's most likely label
and, nearly, the order of the cells' confidences.
"""

from __future__ import annotations

import numpy as np

#: Largest temperature searched; far beyond any seen (a few units).
MAX_TEMPERATURE = 100.0


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    weights = np.exp(scaled)
    return weights / weights.sum(axis=1, keepdims=True)


def temperature_for(logits: np.ndarray, target_confidence: float) -> float:
    """Smallest temperature >= 1 whose mean largest probability is at most the target.

    Parameters
    ----------
    logits
        Classifier logits, shape (n_cells, n_labels).
    target_confidence
        Mean largest probability wanted, in [1 / n_labels, 1].

    Returns
    -------
    1 where the logits are already at or below the target; else the temperature, found by
    bisection on its logarithm (the mean largest probability falls as the temperature rises).
    """

    def mean_confidence(temperature: float) -> float:
        return float(softmax(logits, temperature).max(axis=1).mean())

    if len(logits) == 0 or mean_confidence(1.0) <= target_confidence:
        return 1.0
    low, high = 0.0, float(np.log(MAX_TEMPERATURE))
    for _ in range(50):
        middle = 0.5 * (low + high)
        if mean_confidence(float(np.exp(middle))) > target_confidence:
            low = middle
        else:
            high = middle
    return float(np.exp(high))


def agreement_temperature(logits: np.ndarray, prior_probabilities: np.ndarray) -> float:
    """Temperature of the classifier on the prior's cells, from their agreement with it.

    Parameters
    ----------
    logits
        Classifier logits of the unlabelled modality's cells, shape (n_cells, n_labels).
    prior_probabilities
        The label prior's probabilities of the same cells, in the same order and columns.

    Returns
    -------
    The temperature (>= 1) at which the mean largest probability equals the share of cells
    whose most likely label is the prior's most likely label.
    """
    agreement = float(np.mean(logits.argmax(axis=1) == prior_probabilities.argmax(axis=1)))
    return temperature_for(logits, agreement)
