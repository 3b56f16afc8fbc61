"""Digital twin: synthetic printer video with ground truth from the planned G-code timeline."""
from .anomalies import KINDS, Anomaly, TwinSpecError, parse_spec, validate
from .render import Truth, TwinInputError, render_twin

__all__ = ["KINDS", "Anomaly", "Truth", "TwinInputError", "TwinSpecError", "parse_spec", "render_twin", "validate"]
