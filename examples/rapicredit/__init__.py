"""Seeds 001 + 004: RAPICREDIT's loans assistant on learnloop (run: ``python -m examples.rapicredit``)."""
