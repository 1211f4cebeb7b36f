# The storyline image: every Ray node (deploy/ray-cluster.yaml, deploy/kuberay.yaml) and the
# API. Tag it with pyproject.toml's version, the tag both configs name:
#   docker build -t ghcr.io/OWNER/storyline:0.1.0 . && docker push ghcr.io/OWNER/storyline:0.1.0
# Not built in this repository's checks: no Docker engine or image registry is reachable
# from its machines (the configs that name it are validated, not run).
#
# CUDA 13.0 runtime: the CUDA build of torch 2.14.1 that pyproject.toml pins (its wheel
# brings the CUDA libraries; the host needs an NVIDIA driver >= 580).
FROM nvidia/cuda:13.0.0-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# rsync and ssh: Ray's cluster launcher syncs file_mounts into the container.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv libglib2.0-0 rsync openssh-client ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# One interpreter for Ray, the jobs and the API: `python` on PATH is this venv's, which is
# what a job's `python -m storyline.deploy.cli` finds on every node.
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv

# storyline and its pins (torch==2.14.1, torchvision==0.29.1, ray[default]==2.60.0, ...)
# from pyproject.toml; installed, not editable: a job's --working-dir overrides it.
COPY pyproject.toml README.md /tmp/storyline/
COPY extractor /tmp/storyline/extractor
COPY store /tmp/storyline/store
COPY trainers /tmp/storyline/trainers
COPY deploy /tmp/storyline/deploy
COPY synth /tmp/storyline/synth
RUN pip install --upgrade pip \
    && pip install /tmp/storyline \
    && rm -rf /tmp/storyline \
    && python -c "import decord, ray, torch, storyline.deploy.cli; print(torch.__version__, ray.__version__)"

# Non-root: Ray and the API run as `ray` (uid 1000 is Ubuntu's own `ubuntu` user).
RUN useradd --create-home --uid 1001 --shell /bin/bash ray
USER ray
WORKDIR /home/ray

EXPOSE 8000 6379 8265
# The API by default; Ray nodes are started with `ray start` by the launcher or KubeRay.
CMD ["storyline", "serve", "--host", "0.0.0.0", "--port", "8000"]
