"""In-context learning: the predictors a trained in-context learner is measured against, the
exact constructions behind "attention = gradient descent", and prequential coding.

Public API (see each module's docstring for the claim it encodes):

* :func:`ridge_predict`, :func:`gd_predict`, :func:`lstsq_predict`, :func:`averaging_predict`,
  :func:`knn_predict`, :func:`bayes_predict`, :func:`make_inputs` -- #34: predictors for
  linear-regression prompts, batched, at every prefix length at once (``prefixes=True``).
"""

from .predictors import (
    averaging_predict,
    bayes_predict,
    gd_predict,
    knn_predict,
    lstsq_predict,
    make_inputs,
    ridge_predict,
)

__all__ = [
    "ridge_predict",
    "gd_predict",
    "lstsq_predict",
    "averaging_predict",
    "knn_predict",
    "bayes_predict",
    "make_inputs",
]
