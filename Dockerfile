# syntax=docker/dockerfile:1
# Three stages: production dependencies alone (`npm ci --omit=dev`), a full build (TypeScript and the
# STIX grammar), and a slim runtime that gets only those two results and runs as a non-root user.
# Node 24: the current LTS (Node 20 reached end of life in April 2026); the code still runs on >= 20.12.
FROM node:24-bookworm-slim AS toolchain
# Native modules (better-sqlite3, zeromq) build from source when no prebuilt binary matches.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ cmake \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./

FROM toolchain AS deps
RUN npm ci --omit=dev --no-audit --no-fund

FROM toolchain AS build
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY sim ./sim
COPY test ./test
COPY bench ./bench
RUN npm run build

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production STORE_DIR=/data CONNECTOR_METRICS_PORT=9095
# tini is PID 1: it forwards SIGTERM to node (which stores queued events and finishes in-flight calls) and reaps children.
RUN apt-get update && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/* \
  && mkdir -p /data && chown node:node /data
WORKDIR /app
COPY --from=deps --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist/src ./dist/src
COPY --chown=node:node package.json config.yml.sample ./
USER node
VOLUME ["/data"]
EXPOSE 9095
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.CONNECTOR_METRICS_PORT||9095)+'/healthz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/cli.js", "run"]
