# One image with every binary; docker-compose.yml picks the command per service.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./worker ./webhook ./starter ./cmd/emulator ./cmd/allinone
# The state folder must belong to the image's nonroot user (65532): a named volume mounted there starts
# with the image's ownership, and a root-owned /data would leave the binaries unable to write their state.
RUN mkdir /state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
COPY --from=build --chown=65532:65532 /state /data
# The emulator and the all-in-one command keep state under /data.
WORKDIR /data
USER nonroot
ENTRYPOINT []
