"""EvoQuality never touches the network: every model and processor is loaded from a local directory.

Imported first by the package so Hugging Face libraries see the offline flags before they read them.
`setdefault` leaves a user's explicit choice alone.
"""

import os

for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
