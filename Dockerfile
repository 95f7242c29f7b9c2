# Image for the platform services (pcm-intake, pcm-processor); used by docker-compose.yml.
# Stage 1 builds the wheels (generated protobuf code is committed under services/pcm/), so build
# tools stay out of the runtime image. Only the paths the package needs are copied: a local
# .venv/, .stack/ or secrets/ never enters the image.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
COPY testkit ./testkit
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/pcm pcm
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-index --find-links /tmp/wheels pcm-monitoring && rm -rf /tmp/wheels
# Catalogues are data the oversight body edits; outside the repo the services need their path.
COPY catalogues /opt/pcm/catalogues
ENV PCM_CATALOGUE_DIR=/opt/pcm/catalogues
USER pcm
WORKDIR /home/pcm
# gRPC 50051-50055 (intake, complaints, indicators, surveys, benchmark), metrics 9101-9110, the
# benchmark dashboard 8088 (HTTP). Documentation only: the commands choose the ports.
EXPOSE 50051 50052 50053 50054 50055 9101 9102 9103 9104 9105 9106 9107 9108 9109 9110 8088
CMD ["pcm-intake", "serve"]
