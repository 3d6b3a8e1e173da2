# steerbot — CPU image. Build: docker build -t steerbot .
# Run:  docker run -e DISCORD_TOKEN=… -e DATABASE_URL=… -v steerbot-data:/app/data steerbot
# (Without tokens `steerbot start` is the terminal playground: add -it.)

FROM node:20-bookworm-slim AS deps
WORKDIR /app
# git/cmake/g++: the bundled llama.cpp source is checked out and the native trainer built from it.
RUN apt-get update && apt-get install -y --no-install-recommends git cmake g++ make python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm i --no-save tsx@4.23.15

FROM node:20-bookworm-slim AS runtime
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production STEERBOT_CACHE_DIR=/app/cache
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
COPY config ./config
VOLUME ["/app/data", "/app/cache"]
ENTRYPOINT ["node", "bin/steerbot.js"]
CMD ["start"]
