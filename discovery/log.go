package discovery

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"go.uber.org/zap/zapcore"
)

// Library logs (go-libp2p through gologshim, kad-dht through go-log/zap, zeroconf
// through the standard library's log package) are process-global: their loggers are
// package variables of those libraries. RouteLibraryLogs, called by the program
// (kchat's main) when it sets up its log, routes all three into one process-wide
// slog target. Importing this package changes nothing; Start does not either.
// Once routed, and until a Logger is given, library logs are dropped: they never
// reach stderr (a terminal UI owns the screen).
//
// Levels: Warn and above, unless GOLOG_LOG_LEVEL is set (same syntax as go-log,
// e.g. "warn,dht=debug"), in which case its per-subsystem levels apply.

// libTarget is the handler library logs go to; nil means discard.
var libTarget atomic.Pointer[slog.Handler]

var routeOnce sync.Once

// RouteLibraryLogs routes the libraries' process-wide loggers into l (nil: keep
// the current target, which starts as discard). The first call installs the
// routes: gologshim's default handler, go-log's primary core (with Warn as the
// default level), and the standard library logger's output; call it before any
// libp2p host exists, since gologshim resolves its handler on each logger's first
// log call. Later calls only change the target; the most recent one wins.
func RouteLibraryLogs(l *slog.Logger) {
	routeOnce.Do(installRoutes)
	if l != nil {
		h := l.Handler()
		libTarget.Store(&h)
	}
}

func installRoutes() {
	gologshim.SetDefaultHandler(&routeHandler{})

	cfg := golog.GetConfig()
	cfg.Stderr, cfg.Stdout, cfg.File, cfg.URL = false, false, "", ""
	quiet := os.Getenv("GOLOG_LOG_LEVEL") == "" && os.Getenv("IPFS_LOGGING") == ""
	if quiet {
		cfg.Level = golog.LevelWarn
		if cfg.SubsystemLevels == nil {
			cfg.SubsystemLevels = map[string]golog.LogLevel{}
		}
		for sys, lvl := range quietSubsystems {
			cfg.SubsystemLevels[sys] = golog.LogLevel(zapLevel(lvl))
		}
	}
	golog.SetupLogging(cfg)
	golog.SetPrimaryCore(&zapRouteCore{})

	log.SetFlags(0)
	log.SetPrefix("")
	log.SetOutput(stdLogWriter{})
}

// quietSubsystems raise the default level of subsystems whose warnings are
// expected in normal operation (kad-dht warns on every start of a node whose routing
// table is still empty, e.g. a first seed).
var quietSubsystems = map[string]slog.Level{
	"dht/RtRefreshManager": slog.LevelError,
}

func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l < slog.LevelInfo:
		return zapcore.DebugLevel
	case l < slog.LevelWarn:
		return zapcore.InfoLevel
	case l < slog.LevelError:
		return zapcore.WarnLevel
	default:
		return zapcore.ErrorLevel
	}
}

func currentTarget() slog.Handler {
	if p := libTarget.Load(); p != nil {
		return *p
	}
	return nil
}

var envLevels = sync.OnceValue(func() func(system string) slog.Level {
	if os.Getenv("GOLOG_LOG_LEVEL") == "" {
		return func(system string) slog.Level {
			if l, ok := quietSubsystems[system]; ok {
				return l
			}
			return slog.LevelWarn
		}
	}
	c := gologshim.ConfigFromEnv()
	return c.LevelForSystem
})

// routeHandler is the slog.Handler given to gologshim. Attributes and groups added
// with WithAttrs/WithGroup are replayed on the current target at Handle time, so the
// target can change after a library logger was created.
type routeHandler struct {
	system string
	ops    []handlerOp
}

type handlerOp struct {
	group string
	attrs []slog.Attr
}

func (h *routeHandler) Enabled(ctx context.Context, lvl slog.Level) bool {
	t := currentTarget()
	if t == nil || lvl < envLevels()(h.system) {
		return false
	}
	return t.Enabled(ctx, lvl)
}

func (h *routeHandler) Handle(ctx context.Context, r slog.Record) error {
	t := currentTarget()
	if t == nil {
		return nil
	}
	for _, op := range h.ops {
		if op.group != "" {
			t = t.WithGroup(op.group)
		} else {
			t = t.WithAttrs(op.attrs)
		}
	}
	return t.Handle(ctx, r)
}

func (h *routeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := &routeHandler{system: h.system, ops: append(h.ops[:len(h.ops):len(h.ops)], handlerOp{attrs: attrs})}
	for _, a := range attrs {
		if a.Key == "logger" && n.system == "" {
			n.system = a.Value.String()
		}
	}
	return n
}

func (h *routeHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &routeHandler{system: h.system, ops: append(h.ops[:len(h.ops):len(h.ops)], handlerOp{group: name})}
}

// zapRouteCore is the zapcore.Core installed as go-log's primary core (kad-dht and
// other ipfs libraries log through go-log). go-log's per-subsystem levels filter
// before this core is reached.
type zapRouteCore struct {
	fields []zapcore.Field
}

func zapToSlog(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (c *zapRouteCore) Enabled(l zapcore.Level) bool {
	t := currentTarget()
	return t != nil && t.Enabled(context.Background(), zapToSlog(l))
}

func (c *zapRouteCore) With(fields []zapcore.Field) zapcore.Core {
	return &zapRouteCore{fields: append(c.fields[:len(c.fields):len(c.fields)], fields...)}
}

func (c *zapRouteCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *zapRouteCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	t := currentTarget()
	if t == nil {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	r := slog.NewRecord(e.Time, zapToSlog(e.Level), e.Message, 0)
	r.AddAttrs(slog.String("logger", e.LoggerName))
	for _, k := range keys {
		r.AddAttrs(slog.Any(k, enc.Fields[k]))
	}
	return t.Handle(context.Background(), r)
}

func (c *zapRouteCore) Sync() error { return nil }

// stdLogWriter receives the standard library logger's output (zeroconf).
type stdLogWriter struct{}

func (stdLogWriter) Write(p []byte) (int, error) {
	t := currentTarget()
	if t == nil {
		return len(p), nil
	}
	lvl := slog.LevelWarn
	if bytes.Contains(p, []byte("[ERR")) {
		lvl = slog.LevelError
	}
	if !t.Enabled(context.Background(), lvl) {
		return len(p), nil
	}
	r := slog.NewRecord(timeNow(), lvl, string(bytes.TrimRight(p, "\n")), 0)
	r.AddAttrs(slog.String("logger", "stdlog"))
	_ = t.Handle(context.Background(), r)
	return len(p), nil
}
