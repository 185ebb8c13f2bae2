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

from .constructions import gd_lsa_weights, lsa_forward, lsa_predict
from .prequential import bma_log_loss, complexity_split, log_evidence, prequential_log_loss
from . import predictors_claims as _predictors_claims  # noqa: F401  (registers the ridge claims)
from . import constructions_claims as _constructions_claims  # noqa: F401  (registers the LSA = GD claim)

__all__ += ["gd_lsa_weights", "lsa_forward", "lsa_predict", "prequential_log_loss", "log_evidence",
            "complexity_split", "bma_log_loss"]
from . import prequential_claims as _prequential_claims  # noqa: F401  (registers the prequential and BMA claims)
from .autoregressive import cot_rollout, ls_forecast, lsa_coefficients, lsa_forecast, train_lsa
from .autoregressive import make_inputs as make_ar_inputs
from . import autoregressive_claims as _autoregressive_claims  # noqa: F401  (registers the AR(p) forecasting claims)

__all__ += ["make_ar_inputs", "ls_forecast", "lsa_forecast", "lsa_coefficients", "cot_rollout", "train_lsa"]
from .learners import Learner, ilwd, implicit_weights, learner_predict, spd, train_learner
from . import learners_claims as _learners_claims  # noqa: F401  (registers the trained-learner claims)

__all__ += ["Learner", "train_learner", "learner_predict", "spd", "ilwd", "implicit_weights"]
