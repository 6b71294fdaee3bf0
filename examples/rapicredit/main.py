"""``python -m examples.rapicredit``: the assistant's day on the demo home.

Set ``OPENAI_API_KEY`` (and optionally ``OPENAI_BASE_URL``) to also start a real
fine-tuning job; without them the dataset is exported and nothing remote is called.
"""

from __future__ import annotations

import os
import time

import learnloop

from .app import run


def main() -> None:
    home = os.environ.get("LEARNLOOP_HOME") or os.path.join(os.getcwd(), ".learnloop")
    provider = None
    if os.environ.get("OPENAI_API_KEY"):
        from learnloop.training.finetune import OpenAIFineTuning

        provider = OpenAIFineTuning(base_url=os.environ.get("OPENAI_BASE_URL"), api_key=os.environ["OPENAI_API_KEY"])
    tenant = f"rapicredit-{time.strftime('%Y%m%d-%H%M%S')}"
    exports = os.path.join(home, "exports", tenant)
    os.makedirs(exports, exist_ok=True)
    with learnloop.connect(home=home, tenant=tenant, project="asistente") as ll:
        run(ll, export_dir=exports, finetune_provider=provider)


if __name__ == "__main__":
    main()
