# Two images from one file, neither holding the other's code (docker-compose.yml builds both):
#   --target worker (the default): the leads-data-sync distribution, `leads-sync worker -l info`;
#   --target emulator: the sfmc-emulator distribution alone (sfmc_emulator/), `sfmc-emulator --port 18765`.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 leads
WORKDIR /app

FROM base AS emulator
COPY sfmc_emulator ./sfmc_emulator
RUN pip install ./sfmc_emulator
USER leads
WORKDIR /home/leads
EXPOSE 18765
CMD ["sfmc-emulator", "--host", "0.0.0.0", "--port", "18765"]

FROM base AS worker
COPY pyproject.toml ./
COPY streams ./streams
RUN pip install . \
    && mkdir -p /var/lib/leads \
    && chown leads /var/lib/leads
USER leads
WORKDIR /home/leads
EXPOSE 6066
CMD ["leads-sync", "worker", "-l", "info"]
