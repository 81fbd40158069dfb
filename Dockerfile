# syntax=docker/dockerfile:1
# Build stage: wheels for the bot and its dependencies.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY cards ./cards
COPY migrations ./migrations
COPY feishu_fake ./feishu_fake
COPY sandbox ./sandbox
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Runtime stage: no compilers, a non-root user.
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 bot
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER bot
WORKDIR /home/bot
ENV DATABASE_URL=sqlite:////home/bot/data/collab-bot.db \
    PYTHONUNBUFFERED=1
RUN mkdir -p /home/bot/data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz').status==200 else 1)"
# Migrations first, then the webhook server.
CMD ["sh", "-c", "collab-bot db upgrade && exec collab-bot serve --host 0.0.0.0 --port 8000"]
