# mqtt-acme-broker: an MQTT broker over TLS that obtains and renews its own Let's Encrypt certificate.
#   docker build -t mqtt-acme-broker .
# Node 22 LTS by default (maintained until 2027-04); --build-arg NODE_MAJOR=24 for the next LTS.
# Debian (glibc) rather than Alpine: the one native module, classic-level, ships prebuilt binaries for
# linux x64 and arm64 on glibc, so no compiler is needed in either stage.
ARG NODE_MAJOR=22

# ---- build: compile TypeScript ---------------------------------------------------------------------------
FROM node:${NODE_MAJOR}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: package.json's `prepare` builds, and src/ is not here yet (it is copied after the install,
# so that editing the code does not invalidate the cached dependency layer); the build runs just below.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies and the compiled code only -----------------------------------------
FROM node:${NODE_MAJOR}-bookworm-slim AS runtime
LABEL org.opencontainers.image.title="mqtt-acme-broker" \
      org.opencontainers.image.description="MQTT broker over TLS with its own Let's Encrypt certificate (Cloudflare DNS-01)" \
      org.opencontainers.image.licenses="MIT"
ENV NODE_ENV=production \
    DATA_DIR=/mosquitto/data
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would run tsc, which is a dev dependency (dist comes from the build stage). The
# one native module, classic-level, needs no install script: it loads its prebuilt binary when required.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
    && npm cache clean --force
COPY --from=build /app/dist ./dist
# The paths of the mosquitto image, owned by the user the broker runs as (node, uid/gid 1000). The code in
# /app stays root-owned: the broker cannot modify itself.
RUN mkdir -p /mosquitto/conf /mosquitto/data /etc/letsencrypt \
    && chown node:node /mosquitto/conf /mosquitto/data /etc/letsencrypt
USER node
# Certificates in certbot's layout, and the broker's state (sessions, retained messages, self-signed cert).
VOLUME ["/etc/letsencrypt", "/mosquitto/data"]
# 8883: MQTT over TLS. 9883: /healthz, /readyz, /metrics (OPS_PORT; not 9090, Prometheus' own port).
EXPOSE 8883 9883
# Node itself makes the request: slim images have no curl or wget.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.OPS_PORT||9883)+'/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The broker closes listeners, disconnects clients and flushes persistence within 10 s of SIGTERM.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["serve"]
