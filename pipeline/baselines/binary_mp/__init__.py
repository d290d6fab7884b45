"""Message-passing learners (BP, AMP/TAP, MF) for binary-weight MLPs with sign activations.

Lucibello, Pittorino, Perugini, Zecchina, "Deep learning via message passing algorithms based
on belief propagation", Mach. Learn.: Sci. Technol. 2022; equations in
../shared/docs/bp-amp-mf.md. Public API::

    config = load_config("amp", epochs=3)            # or BinaryMPConfig(method="amp", ...)
    result = train_binary_mp(config, x_train, y_train, x_test, y_test, on_epoch=callback)

Variance convention: pre-activation spreads are always variances (see scalar_functions).
"""

from pipeline.baselines.binary_mp.learner import (
    BinaryMPConfig,
    BinaryMPNet,
    BinaryMPResult,
    fit_arrays,
    load_config,
    preprocess,
    train_binary_mp,
)

__all__ = [
    "BinaryMPConfig",
    "BinaryMPNet",
    "BinaryMPResult",
    "fit_arrays",
    "load_config",
    "preprocess",
    "train_binary_mp",
]
