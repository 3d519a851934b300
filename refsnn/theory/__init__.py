"""Closed-form results that the simulator is tested against (see ``proofs/``)."""

from refsnn.theory.if_ import (RESETS, V_INITS, SubgradientIterates, constant_input_count,
                               rate_error_bound, rate_loss, rate_loss_subgradient,
                               subgradient_iterates)

__all__ = ["constant_input_count", "rate_error_bound", "subgradient_iterates",
           "SubgradientIterates", "rate_loss", "rate_loss_subgradient", "V_INITS", "RESETS"]
