"""Online experiments, the pure core: definitions, reader assignment, team-draft interleaving, statistics,
reports and the guardrail. No I/O: the service feeds counts in and acts on what comes out."""

from __future__ import annotations

from .assignment import assign, in_traffic
from .definition import Arm, Experiment, Guardrail
from .guardrail import Stop, arms_to_stop
from .impression_token import ImpressionSigner, ShownList, TokenError
from .interleaving import credit, impression_rng, team_draft
from .report import ArmRow, Report, report
from .statistics import ArmCounts, Outcomes

__all__ = ["Arm", "ArmCounts", "ArmRow", "Experiment", "Guardrail", "ImpressionSigner", "Outcomes", "Report",
           "ShownList", "Stop", "TokenError", "arms_to_stop", "assign", "credit", "impression_rng", "in_traffic",
           "report", "team_draft"]
