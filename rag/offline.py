"""Switch off every phone-home and hub download before the heavy libraries are imported.

Import this module (or call `enforce_offline()`) before importing chromadb, sentence_transformers,
transformers or streamlit: several of them read these variables once, at import time.
"""

from __future__ import annotations

import os

# Values are forced, not defaulted: a user's shell may have HF_HUB_OFFLINE=0 exported for other work,
# but Archivist never downloads anything at run time.
OFFLINE_ENVIRONMENT: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "ANONYMIZED_TELEMETRY": "False",  # Chroma reads this through its pydantic Settings
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    "STREAMLIT_CLIENT_TOOLBAR_MODE": "minimal",
    "STREAMLIT_SERVER_HEADLESS": "true",
    "TOKENIZERS_PARALLELISM": "false",
}


def enforce_offline() -> None:
    """Set the offline switches in this process (children inherit them)."""
    os.environ.update(OFFLINE_ENVIRONMENT)


enforce_offline()


def _guard_egress() -> None:
    """Refuse connections off this machine, but to the servers the environment names (settings saved from
    the page are added when the clients are built, see rag.factory)."""
    from rag import egress

    egress.install()
    egress.allow_urls(os.environ.get(name) for name in (
        "OLLAMA_HOST", "ARCHIVIST_OLLAMA_HOST", "ARCHIVIST_OPENAI_BASE_URL", "ARCHIVIST_CHROMA_URL"))


_guard_egress()
