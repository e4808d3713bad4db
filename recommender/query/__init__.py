"""Lists out: result types, the one ranking core, popularity maths and the Recommender every caller queries."""

from __future__ import annotations

from .recommender import Recommender
from .results import Recommendation
from .rules import Rule, RuleSet

__all__ = ["Recommendation", "Recommender", "Rule", "RuleSet"]
