import os
from pathlib import Path

# Tests must never touch a developer's own embedded server or home.
os.environ.pop("LEARNLOOP_DATABASE_URL", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = ["tests.fix_routing", "tests.fix_db", "tests.fix_server"]

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
