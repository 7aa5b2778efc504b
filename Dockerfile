# Archivist's app image: watcher + Streamlit page, CPU-only PyTorch, no downloads at run time.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    ARCHIVIST_DATA_DIR=/data

WORKDIR /app
# PyTorch's CPU-only build first: the default wheel on Linux is a multi-GB CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml constraints.txt README.md ./
COPY rag ./rag
COPY ingest ./ingest
COPY ui ./ui
RUN pip install -c constraints.txt .

RUN useradd --create-home archivist && mkdir -p /data && chown archivist /data
USER archivist
VOLUME ["/data"]
EXPOSE 8501
# Inside the container it must listen on all interfaces for the published port; compose publishes it on
# the host's 127.0.0.1 only.
CMD ["archivist", "ui", "/documents", "--host", "0.0.0.0", "--port", "8501"]
