// Package devserver runs a single-node Temporal server in process, with its state in a SQLite file so that a
// restart keeps every workflow, and the Temporal Web UI beside it. It is the embedded default of the one-
// command local run; production points the same binaries at a Temporal cluster or Temporal Cloud instead.
//
// The wiring follows go.temporal.io/server/temporaltest, which does the same in memory for tests.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/metrics"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
)

// Config says where the server keeps its state and listens.
type Config struct {
	// DataDir holds the SQLite file (temporal.db); it is created if missing.
	DataDir string
	// Namespace is created at start if missing; default "default".
	Namespace string
	// IP to listen on; default 127.0.0.1 (the dev server has no authentication).
	IP string
	// FrontendPort is Temporal's gRPC port; default 7233. Four consecutive-free ports are not needed: the
	// other services take free ports of their own.
	FrontendPort int
	// UIPort serves the Web UI; default 8233; -1 disables the UI.
	UIPort int
	// CodecEndpoint is where the Web UI sends encrypted payloads to be shown (Temporal's remote codec
	// protocol); empty shows them as stored.
	CodecEndpoint string
	// SearchAttributes are registered on the namespace at start (existing ones are left alone).
	SearchAttributes map[string]enumspb.IndexedValueType
	// Logger receives the server's logs; nil discards them.
	Logger log.Logger
}

// Server is a running dev server.
type Server struct {
	cfg      Config
	temporal temporal.Server
	ui       *uiserver.Server
	hostPort string
}

// Start brings the server up and returns once it accepts clients and the namespace and search attributes
// exist.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("devserver: a data folder is required")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.IP == "" {
		cfg.IP = "127.0.0.1"
	}
	if cfg.FrontendPort == 0 {
		cfg.FrontendPort = 7233
	}
	if cfg.UIPort == 0 {
		cfg.UIPort = 8233
	}
	if cfg.Logger == nil {
		cfg.Logger = log.NewNoopLogger()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("devserver: data folder: %w", err)
	}
	// Fail early and clearly when a port is taken, rather than deep inside the server (or, for the UI,
	// with the UI server exiting the process).
	for _, p := range []int{cfg.FrontendPort, cfg.UIPort} {
		if p > 0 {
			if err := portFree(cfg.IP, p); err != nil {
				return nil, fmt.Errorf("devserver: %w", err)
			}
		}
	}

	dbPath := filepath.Join(cfg.DataDir, "temporal.db")
	sqlCfg := &config.SQL{
		PluginName:        sqliteplugin.PluginName,
		DatabaseName:      dbPath,
		ConnectAttributes: map[string]string{"mode": "rwc", "_journal_mode": "wal", "_synchronous": "2"},
	}
	if _, err := os.Stat(dbPath); errors.Is(err, os.ErrNotExist) {
		if err := sqlite.SetupSchema(sqlCfg); err != nil {
			return nil, fmt.Errorf("devserver: create schema: %w", err)
		}
	}
	ns, err := sqlite.NewNamespaceConfig("active", cfg.Namespace, false, cfg.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("devserver: namespace: %w", err)
	}
	if err := sqlite.CreateNamespaces(sqlCfg, ns); err != nil {
		return nil, fmt.Errorf("devserver: create namespace: %w", err)
	}

	srvCfg, err := serverConfig(cfg, sqlCfg)
	if err != nil {
		return nil, err
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(srvCfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(cfg.Logger),
		temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			// Search attributes registered a moment ago are usable at once.
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("devserver: new server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("devserver: start: %w", err)
	}
	s := &Server{cfg: cfg, temporal: srv, hostPort: net.JoinHostPort(cfg.IP, strconv.Itoa(cfg.FrontendPort))}
	if cfg.UIPort > 0 {
		s.ui = uiserver.NewServer(uioptions.WithConfigProvider(&uiconfig.Config{
			TemporalGRPCAddress: s.hostPort,
			Host:                cfg.IP,
			Port:                cfg.UIPort,
			EnableUI:            true,
			DefaultNamespace:    cfg.Namespace,
			HideLogs:            true,
			DisableNewsFetch:    true,
			CORS:                uiconfig.CORS{CookieInsecure: true},
			Codec:               uiconfig.Codec{Endpoint: cfg.CodecEndpoint},
		}))
		go func() { _ = s.ui.Start() }()
	}
	return s, nil
}

// HostPort is the frontend's gRPC address for clients and workers.
func (s *Server) HostPort() string { return s.hostPort }

// Namespace is the namespace the server was started with.
func (s *Server) Namespace() string { return s.cfg.Namespace }

// UIURL is the Web UI's address, or "" when it is off.
func (s *Server) UIURL() string {
	if s.ui == nil {
		return ""
	}
	return "http://" + net.JoinHostPort(s.cfg.IP, strconv.Itoa(s.cfg.UIPort))
}

// Stop stops the UI and the server; state stays in the data folder.
func (s *Server) Stop() error {
	if s.ui != nil {
		s.ui.Stop()
	}
	return s.temporal.Stop()
}

// dial connects a client, retrying while the freshly started frontend comes up.
func dial(ctx context.Context, hostPort, namespace string) (client.Client, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := client.DialContext(ctx, client.Options{HostPort: hostPort, Namespace: namespace, Logger: quietLogger{}})
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("devserver: connect to %s: %w", hostPort, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func portFree(ip string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port %d on %s is taken (is another instance running?): %w", port, ip, err)
	}
	return l.Close()
}

func serverConfig(cfg Config, sqlCfg *config.SQL) (*config.Config, error) {
	free := func() (int, error) {
		l, err := net.Listen("tcp", net.JoinHostPort(cfg.IP, "0"))
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	// The internal services take ports next to the frontend's, the same on every start: the cluster's
	// membership is kept in the SQLite file, and a restart that came back on other ports would spend its
	// first half-minute trying to reach the previous run's hosts. A taken port falls back to a free one.
	next := cfg.FrontendPort
	port := func() (int, error) {
		for next < cfg.FrontendPort+50 && next < 65535 {
			next++
			if cfg.UIPort > 0 && next == cfg.UIPort {
				continue
			}
			if portFree(cfg.IP, next) == nil {
				return next, nil
			}
		}
		return free()
	}
	services := map[string]config.Service{}
	for _, name := range []string{"frontend", "history", "matching", "worker"} {
		grpcPort := cfg.FrontendPort
		if name != "frontend" {
			p, err := port()
			if err != nil {
				return nil, fmt.Errorf("devserver: ports: %w", err)
			}
			grpcPort = p
		}
		mp, err := port()
		if err != nil {
			return nil, fmt.Errorf("devserver: ports: %w", err)
		}
		services[name] = config.Service{RPC: config.RPC{GRPCPort: grpcPort, MembershipPort: mp, BindOnIP: cfg.IP}}
	}
	metricsPort, err := free()
	if err != nil {
		return nil, fmt.Errorf("devserver: ports: %w", err)
	}
	frontend := net.JoinHostPort(cfg.IP, strconv.Itoa(cfg.FrontendPort))
	return &config.Config{
		Global: config.Global{
			Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: cfg.IP},
			Metrics: &metrics.Config{Prometheus: &metrics.PrometheusConfig{
				ListenAddress: net.JoinHostPort(cfg.IP, strconv.Itoa(metricsPort)), HandlerPath: "/metrics",
			}},
		},
		Persistence: config.Persistence{
			DefaultStore:     sqliteplugin.PluginName,
			VisibilityStore:  sqliteplugin.PluginName,
			NumHistoryShards: 1,
			DataStores:       map[string]config.DataStore{sqliteplugin.PluginName: {SQL: sqlCfg}},
		},
		ClusterMetadata: &cluster.Config{
			EnableGlobalNamespace:    false,
			FailoverVersionIncrement: 10,
			MasterClusterName:        "active",
			CurrentClusterName:       "active",
			ClusterInformation: map[string]cluster.ClusterInformation{
				"active": {Enabled: true, InitialFailoverVersion: 1, RPCAddress: frontend},
			},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services:            services,
		Archival: config.Archival{
			History:    config.HistoryArchival{State: "disabled"},
			Visibility: config.VisibilityArchival{State: "disabled"},
		},
		NamespaceDefaults: config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
			History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
			Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
		}},
		PublicClient: config.PublicClient{HostPort: frontend},
	}, nil
}
