# syntax=docker/dockerfile:1
# Multi-stage: build libbraid and the default model with the toolchain, then
# ship a slim runtime with only what `braid serve` needs.
FROM node:20-bookworm AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
COPY scripts ./scripts
COPY c ./c
COPY engine ./engine
COPY models ./models
# postinstall builds c/build/libbraid.so and checks the committed models/chimera-tiny.gguf
# against its SHA-256 (.dockerignore lets that one model into the context)
RUN npm ci
RUN npm prune --omit=dev

FROM node:20-bookworm-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production BRAID_HOST=0.0.0.0 BRAID_PORT=8080 BRAID_DATA_DIR=/data
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/c/build/libbraid.so ./c/build/libbraid.so
COPY --from=build /app/models ./models
COPY package.json ./
COPY bin ./bin
COPY engine ./engine
COPY server ./server
COPY scripts ./scripts
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:8080/health').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"
CMD ["node", "bin/braid.js", "serve"]
