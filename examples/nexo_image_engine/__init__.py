"""Seed 000: Nexo Sinérgico's image engine on learnloop (run: ``python -m examples.nexo_image_engine``)."""
