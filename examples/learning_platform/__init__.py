"""Seed 003's learning platform on learnloop (run: ``python -m examples.learning_platform``)."""
