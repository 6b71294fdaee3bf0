"""The ledger: generations with lineage, feedback, the review queue (seeds 000, 001)."""

from .models import Feedback, FeedbackIn, Generation, GenerationIn

__all__ = ["Feedback", "FeedbackIn", "Generation", "GenerationIn"]
