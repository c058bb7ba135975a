# syntax=docker/dockerfile:1
# Multi-stage build: compile TypeScript with dev dependencies, ship only production ones.
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

FROM node:24-slim AS runtime
# Config from a mounted file (IPGATE_CONFIG) and/or environment variables (README: Environment variables).
ENV NODE_ENV=production \
    IPGATE_CONFIG=/etc/ipgate/gateway.yaml \
    IPGATE_STORE=/var/lib/ipgate/store.json
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config/gateway.yaml /etc/ipgate/gateway.yaml
# The store and its lock file live here, writable by the unprivileged user; mount a volume to keep them.
RUN mkdir -p /var/lib/ipgate && chown 1000:1000 /var/lib/ipgate
# The image's unprivileged "node" user, by number, so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080
# Liveness: GET /healthz on the admin listener (IPGATE_ADMIN_LISTEN, default 127.0.0.1:9090).
# Slim images have no curl, so node probes (dist/healthcheck.js).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["node", "dist/healthcheck.js"]
# SIGTERM drains requests in flight for up to drainTimeoutMs (default 30 s), then exits 0.
# Give the runtime longer than that before it kills: docker run --stop-timeout 35, Kubernetes
# terminationGracePeriodSeconds: 35.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["start"]
