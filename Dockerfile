# Privacy Desk in a container: `docker build -t privacy-desk .` then
# `docker run --env-file .env -v privacy-desk-data:/data privacy-desk` (or `docker compose up`).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATABASE_PATH=/data/privacy-desk.sqlite3 \
    LOG_FORMAT=json

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY core ./core
COPY handlers ./handlers
COPY storage ./storage
RUN pip install . && rm -rf /app/build

# a user of its own, no shell, no home to write in; the database on a volume it owns
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin privacy \
    && mkdir -p /data && chown privacy /data && chmod 700 /data
USER privacy
VOLUME ["/data"]
WORKDIR /data

# Socket Mode needs no port; with SLACK_MODE=http the app listens on PORT (3000)
EXPOSE 3000
CMD ["privacy-desk", "run"]
