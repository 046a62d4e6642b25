# lutnas: the server, the job worker and a CPU profiler agent share this one image.
# Build: docker build -t lutnas:latest .   (docker compose build does it for you)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The CPU build of torch, from the PyTorch CPU index: the PyPI wheel would pull the CUDA
# stack (gigabytes) that a CPU worker never uses. Installed first so the layer is cached and
# `pip install .` below finds torch==2.13.0 already satisfied (2.13.0+cpu matches ==2.13.0).
ARG TORCH_VERSION=2.13.0
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY lutnas ./lutnas
COPY tracking ./tracking
COPY profilers ./profilers
COPY latency_tables ./latency_tables
COPY search ./search
COPY server ./server
COPY client ./client
# LUTNAS_EXTRAS=ray builds the image of the compose `ray` profile (Ray head, Ray worker, lutnas worker)
ARG LUTNAS_EXTRAS=""
RUN pip install .${LUTNAS_EXTRAS:+"[$LUTNAS_EXTRAS]"} && python -c "import torch, lutnas.cli; assert torch.__version__.startswith('${TORCH_VERSION}')"

# Run unprivileged; /data holds uploads (checkpoints, validation sets) and the unit ONNX cache.
RUN useradd --create-home --uid 10001 lutnas && mkdir -p /data && chown lutnas:lutnas /data
USER lutnas
ENV LUTNAS_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
    CMD python -c "import sys, httpx; sys.exit(httpx.get('http://127.0.0.1:8000/healthz', timeout=4).status_code != 200)"

CMD ["lutnas", "serve", "--host", "0.0.0.0", "--port", "8000"]
