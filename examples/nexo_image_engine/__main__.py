import os
import time

import learnloop

from .app import run

home = os.environ.get("LEARNLOOP_HOME") or os.path.join(os.getcwd(), ".learnloop")
with learnloop.connect(home=home, tenant=f"nexo-{time.strftime('%Y%m%d-%H%M%S')}", project="image-engine") as ll:
    run(ll)
