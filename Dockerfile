# The leads-data-sync image: the worker (`leads-sync worker -l info`) and the SFMC emulator
# (`python -m streams.marketing_cloud.emulator`). Used by docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml ./
COPY streams ./streams
RUN pip install . \
    && useradd --create-home --uid 10001 leads \
    && mkdir -p /var/lib/leads \
    && chown leads /var/lib/leads

USER leads
WORKDIR /home/leads
EXPOSE 6066 18765
CMD ["leads-sync", "worker", "-l", "info"]
