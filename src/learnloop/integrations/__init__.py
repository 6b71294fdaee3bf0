"""Integrations that feed learnloop without rewriting the app: ``openai.wrap`` (a drop-in
wrapper for the official client) and the background ``Recorder`` it writes through. The
OTLP receiver lives in ``learnloop.traces`` and ``learnloop.api.routes.otlp``."""
