"""theorylab: theoretical claims about sequence models as small, checkable experiments.

Importing theorylab is cheap: theme subpackages load on first use and numba kernels
compile on first call.  Public surface:

* ``theorylab.ssm``    -- state-space models and their attention forms;
* ``theorylab.claims`` -- the claim registry behind ``theorylab verify``;
* ``theorylab.tolerances.assert_close`` -- the tolerance policy;
* ``theorylab.testing`` -- hypothesis strategies and equivalence helpers for your kernels.
"""

__version__ = "0.1.0"
