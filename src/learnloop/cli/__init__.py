"""The ``learnloop`` command: thin click commands, each one library call."""
