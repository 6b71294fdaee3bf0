"""learnloop: the learning loop for AI applications, on PostgreSQL."""

from .client import Client, connect
from .errors import (
    ConfigurationError,
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    LearnloopError,
    NotFound,
    PermissionDenied,
    ProviderError,
)
from .ledger.models import Feedback, FeedbackIn, Generation, GenerationIn

__version__ = "0.1.0"

__all__ = [
    "Client", "Conflict", "ConfigurationError", "DatabaseUnavailable", "Feedback", "FeedbackIn",
    "Generation", "GenerationIn", "InvalidInput", "LearnloopError", "NotFound",
    "PermissionDenied", "ProviderError", "connect",
]
