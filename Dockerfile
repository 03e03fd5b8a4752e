# Build: the Swift toolchain image; run: a slim Debian with libpq only.
FROM swift:6.3-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Resolve packages in their own layer so source edits do not refetch them.
COPY Package.swift ./
RUN swift package resolve
COPY . .
RUN swift build -c release --static-swift-stdlib --product analytics-api \
    && mkdir /app \
    && cp "$(swift build -c release --show-bin-path)/analytics-api" /app/ \
    && cp -R "$(swift build -c release --show-bin-path)"/*.resources /app/

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 ca-certificates tzdata curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app analytics
COPY --from=build /app /app
USER analytics
WORKDIR /app
ENV HOST=0.0.0.0 PORT=8002
EXPOSE 8002
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${PORT}/ready" || exit 1
ENTRYPOINT ["/app/analytics-api"]
CMD ["serve"]
