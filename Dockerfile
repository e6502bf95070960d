# Gatehouse container image. Build: docker build -t gatehouse .
# Run:   docker run -p 8080:8080 -e DATABASE_URL=postgres://… gatehouse
# (compose.yaml runs it beside PostgreSQL.)

# --- dependencies: production packages only, from the lock file ---------------------------
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# The postinstall hook (node scripts/third-party-protos.ts) needs only Node 24 and the packages.
COPY scripts/third-party-protos.ts scripts/
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime -------------------------------------------------------------------------------
FROM node:24-slim
ENV NODE_ENV=production \
    GATEHOUSE_HOST=0.0.0.0 \
    GATEHOUSE_PORT=8080 \
    GATEHOUSE_DATA_DIR=/var/lib/gatehouse
# The runtime settings of `npm start` (see "Runtime and memory" in the README): glibc malloc
# tuning here, read when the process starts; the V8 heap flags are in the ENTRYPOINT below.
ENV MALLOC_ARENA_MAX=1
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY gen ./gen
COPY src ./src
# Without DATABASE_URL, Gatehouse starts an embedded PostgreSQL here; give it a volume.
RUN mkdir -p /var/lib/gatehouse && chown node:node /var/lib/gatehouse
VOLUME ["/var/lib/gatehouse"]
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.GATEHOUSE_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Node 24 runs the TypeScript sources directly (type stripping); SIGTERM drains in-flight calls.
ENTRYPOINT ["node", "--max-semi-space-size=4", "--max-old-space-size=256", "--v8-pool-size=0", "src/main.ts"]
CMD ["serve"]
