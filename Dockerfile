# tokenledgerd on Debian 12, built from this repository with Debian's packages.
#   docker build -t tokenledger .
#   docker run -p 8080:8080 -v tokenledger-data:/data tokenledger             # embedded log
#   docker compose up                                                          # on Kafka
# ledger-audit is included: docker-compose.yml makes the trust root and certifies
# the replica with it (in /trust, a volume, and /data).
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config capnproto libcapnp-dev liblmdb-dev \
      libsodium-dev librdkafka-dev libh2o-evloop-dev libcurl4-openssl-dev nlohmann-json3-dev \
      zlib1g-dev doctest-dev ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOKENLEDGER_BUILD_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" --target tokenledgerd tokenctl tokenledger-migrate ledger-audit

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libcapnp-0.9.2 liblmdb0 libsodium23 librdkafka1 libh2o-evloop0.13 libcurl4 zlib1g \
      ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /data --uid 10001 tokenledger && mkdir -p /data /trust \
 && chown tokenledger /data /trust
COPY --from=build /build/bin/tokenledgerd /build/bin/tokenctl /build/bin/tokenledger-migrate \
     /build/bin/ledger-audit /usr/local/bin/
USER tokenledger
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["tokenledgerd", "--data-dir", "/data", "--listen", "0.0.0.0:8080"]
