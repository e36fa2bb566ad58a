# One image with every binary; docker-compose.yml picks the command per service.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./worker ./webhook ./starter ./cmd/emulator ./cmd/allinone

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
# The emulator and the all-in-one command keep state under /data.
WORKDIR /data
USER nonroot
ENTRYPOINT []
