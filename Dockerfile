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
# Migrations first, then the webhook server. `collab-bot serve` faces the network itself (plain
# uvicorn has no deadline for reading a request; these are added to its own protocol, so there is no
# second process to run and the server sees each client's address; README, Reliability): it cuts
# requests whose headers take over HEADER_TIMEOUT_SECONDS (5) or whose body takes over
# BODY_TIMEOUT_SECONDS (10), allows MAX_CONNECTIONS_PER_CLIENT (64) connections per client address
# and MAX_CONNECTIONS (4096) in all (bot/server.py). The per-address cap needs the real client
# address: Docker's published ports keep it (iptables), but where Docker's userland proxy carries
# the traffic (e.g. IPv6 to an IPv4-only container) or a reverse proxy is in front, every client
# has the same address — set MAX_CONNECTIONS_PER_CLIENT=0 there and cap per client in the proxy.
# Each connection is a file descriptor: the server raises its soft limit to fit MAX_CONNECTIONS
# (within the hard limit, e.g. `docker run --ulimit nofile=8192`).
CMD ["sh", "-c", "collab-bot db upgrade && exec collab-bot serve --host 0.0.0.0 --port 8000"]
