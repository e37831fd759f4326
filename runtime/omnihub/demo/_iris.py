"""The demo's classifier: weights set by hand so that every answer can be checked.

The demo models are not trained. Their weights implement the textbook two-split decision tree
for Fisher's iris flowers -- petal length < 2.45 cm: setosa; else petal width < 1.75 cm:
versicolor; else virginica -- as a 4-2-3 perceptron: each hidden unit is a steep ``tanh`` of
one split (about -1 below the threshold, +1 above), and the output layer turns the two signs
into class scores. So the demo can say what each model must answer (:func:`decision_tree`)
and show that the ONNX, SameDiff and DL4J files all answer it.
"""

from __future__ import annotations

__all__ = [
    "CLASSES",
    "FLOWERS",
    "HIDDEN",
    "LAYERS",
    "Weights",
    "decision_tree",
    "rule_weights",
]

#: The three species, in the order of the models' outputs.
CLASSES = ("setosa", "versicolor", "virginica")

#: One flower of each species from Fisher's iris data (sepal length, sepal width, petal
#: length, petal width in cm; rows 1, 51 and 101 of the data set) and its species.
FLOWERS: tuple[tuple[tuple[float, float, float, float], str], ...] = (
    ((5.1, 3.5, 1.4, 0.2), "setosa"),
    ((7.0, 3.2, 4.7, 1.4), "versicolor"),
    ((6.3, 3.3, 6.0, 2.5), "virginica"),
)

#: (inputs, hidden, outputs) of every demo network.
LAYERS = (4, 2, 3)

#: The hidden units' activation.
HIDDEN = "tanh"

_PETAL_LENGTH, _PETAL_WIDTH = 2, 3
_LENGTH_SPLIT, _WIDTH_SPLIT = 2.45, 1.75
_STEEPNESS = (10.0, 20.0)  # tanh(10 * 0.55) and tanh(20 * 0.05) are well away from 0
_SCALE = 2.0  # class scores of +-2 and +-4: softmax probabilities above 0.86

#: (w0 rows [in][hidden], b0 [hidden], w1 rows [hidden][out], b1 [out]).
Weights = tuple[
    tuple[tuple[float, ...], ...],
    tuple[float, ...],
    tuple[tuple[float, ...], ...],
    tuple[float, ...],
]


def decision_tree(features: tuple[float, ...]) -> str:
    """The species the two-split tree (and therefore every demo model) assigns a flower."""
    if features[_PETAL_LENGTH] < _LENGTH_SPLIT:
        return CLASSES[0]
    return CLASSES[1] if features[_PETAL_WIDTH] < _WIDTH_SPLIT else CLASSES[2]


def rule_weights() -> Weights:
    """The weights implementing :func:`decision_tree`.

    hidden = tanh(x @ w0 + b0): h_length = tanh(10 (petal length - 2.45)), h_width = tanh(20
    (petal width - 1.75)). scores = hidden @ w1 + b1 with setosa = -2 h_length, versicolor =
    2 (h_length - h_width), virginica = 2 (h_length + h_width): the right class scores 2 or 4,
    the others 0 or less.
    """
    n_in, hidden, _ = LAYERS
    w0 = [[0.0] * hidden for _ in range(n_in)]
    w0[_PETAL_LENGTH][0] = _STEEPNESS[0]
    w0[_PETAL_WIDTH][1] = _STEEPNESS[1]
    b0 = (-_STEEPNESS[0] * _LENGTH_SPLIT, -_STEEPNESS[1] * _WIDTH_SPLIT)
    w1 = ((-_SCALE, _SCALE, _SCALE), (0.0, -_SCALE, _SCALE))
    return tuple(tuple(row) for row in w0), b0, w1, (0.0, 0.0, 0.0)
