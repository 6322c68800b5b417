package calm

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sas-platform/terraform-provider-sas/internal/atomicfile"
)

// APIVersion is what every answer carries in api_version.
const APIVersion = "3.1"

// BasePath is where the API lives, as on Prism Central.
const BasePath = "/api/nutanix/v3"

// Default durations of the simulated operations.
const (
	DefaultLaunchTime    = time.Second
	DefaultProvisionTime = 2 * time.Second
	DefaultDeleteTime    = time.Second
	DefaultActionTime    = time.Second
)

// Options configure a Server.
type Options struct {
	// StatePath is the JSON file Calm's entities are kept in. It is
	// rewritten atomically after every change and read back by New, so
	// apps, launches and runlogs survive restarts. Secrets are kept only
	// as SHA-256 hashes. Empty keeps everything in memory.
	StatePath string
	// Users maps user names to passwords for HTTP Basic authentication.
	Users map[string]string
	// APIKeys maps a key's owner (reported as the user) to the key, which
	// clients send in X-Ntnx-Api-Key. Users or APIKeys must not be empty.
	// Credentials are configuration: never written to the state file or logged.
	APIKeys map[string]string
	// Seed is created at start where missing; nil means DefaultSeed().
	Seed *Seed
	// Clock is the simulator's time; nil is time.Now. Every timed state is
	// worked out from stored timestamps and the clock, so a fake clock
	// moves launches and apps along without waiting.
	Clock func() time.Time
	// LaunchTime is how long a pending launch stays running (default 1s);
	// ProvisionTime how long an app stays provisioning (2s); DeleteTime
	// how long deleting lasts (1s); ActionTime how long starting, stopping
	// and restarting last (1s). Set minutes for a realistic demo.
	LaunchTime, ProvisionTime, DeleteTime, ActionTime time.Duration
	// LaunchFailRate is the fraction (0..1) of launches that end in failure.
	LaunchFailRate float64
	// HideDeletedApps leaves deleted apps out of apps/list unless the
	// filter names state (calm-dsl's workarounds suggest some Calm
	// versions behave so). Off by default: deleted apps are listed with
	// state "deleted" and clients filter state!=deleted.
	HideDeletedApps bool
	// Latency is added to every call before it is served.
	Latency time.Duration
	// FailRate is the fraction (0..1) of calls answered 503 with an HTML
	// page, as Prism does when the service is restarting or overloaded.
	FailRate float64
	// RetryAfter, when positive, is sent (in whole seconds, at least 1)
	// with those 503s.
	RetryAfter time.Duration
	// TLSConfig, when set, makes Start serve HTTPS with it (see
	// internal/sim/simtls), as Prism Central does on port 9440.
	TLSConfig *tls.Config
	// Logger receives one line per call (method, path, status, user); nil
	// discards.
	Logger hclog.Logger
	// Rand drives FailRate and LaunchFailRate; set it in tests for
	// reproducible failures.
	Rand *mrand.Rand
}

var _ http.Handler = (*Server)(nil)

// Server is a simulated Nutanix Calm (Self-Service) speaking API v3. It is
// an http.Handler: mount it anywhere (paths start with /api/nutanix/v3/),
// or use Start to listen on an address.
type Server struct {
	log       hclog.Logger
	statePath string
	users     map[string]string
	apiKeys   map[string]string
	clock     func() time.Time
	tlsConfig *tls.Config
	hideDel   bool
	retryAft  time.Duration

	launchTime, provisionTime, deleteTime, actionTime time.Duration

	latency  atomic.Int64  // time.Duration
	failRate atomic.Uint64 // math.Float64bits
	randMu   sync.Mutex
	rand     *mrand.Rand

	mu             sync.RWMutex // guards st, version and the failure knobs below
	st             *store
	version        uint64
	launchFailRate float64
	failLaunches   []string // messages of the next launches to fail
	failProvisions []string // messages of the next provisions to fail

	persistMu sync.Mutex // serialises state file writes; taken before mu
	saved     uint64

	httpMu  sync.Mutex
	httpSrv *http.Server
	baseURL string
}

// New loads the state file (if any), applies the seed and returns a ready
// Server.
func New(opts Options) (*Server, error) {
	if len(opts.Users) == 0 && len(opts.APIKeys) == 0 {
		return nil, errors.New("calm simulator: at least one user or API key is required")
	}
	for u, p := range opts.Users {
		if u == "" || p == "" {
			return nil, errors.New("calm simulator: user names and passwords must not be empty")
		}
	}
	for n, k := range opts.APIKeys {
		if n == "" || k == "" {
			return nil, errors.New("calm simulator: API key names and keys must not be empty")
		}
	}
	for name, f := range map[string]float64{"FailRate": opts.FailRate, "LaunchFailRate": opts.LaunchFailRate} {
		if f < 0 || f > 1 || math.IsNaN(f) {
			return nil, fmt.Errorf("calm simulator: %s %v is outside 0..1", name, f)
		}
	}
	s := &Server{
		log:            opts.Logger,
		statePath:      opts.StatePath,
		users:          map[string]string{},
		apiKeys:        map[string]string{},
		clock:          opts.Clock,
		tlsConfig:      opts.TLSConfig,
		hideDel:        opts.HideDeletedApps,
		retryAft:       opts.RetryAfter,
		launchTime:     orDefault(opts.LaunchTime, DefaultLaunchTime),
		provisionTime:  orDefault(opts.ProvisionTime, DefaultProvisionTime),
		deleteTime:     orDefault(opts.DeleteTime, DefaultDeleteTime),
		actionTime:     orDefault(opts.ActionTime, DefaultActionTime),
		rand:           opts.Rand,
		launchFailRate: opts.LaunchFailRate,
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.rand == nil {
		s.rand = mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
	}
	for u, p := range opts.Users {
		s.users[u] = p
	}
	for n, k := range opts.APIKeys {
		s.apiKeys[n] = k
	}
	s.SetLatency(opts.Latency)
	s.SetFailRate(opts.FailRate)

	st := &store{}
	if opts.StatePath != "" {
		var err error
		if st, err = loadState(opts.StatePath); err != nil {
			return nil, fmt.Errorf("calm simulator: %w", err)
		}
	}
	seed := opts.Seed
	if seed == nil {
		d := DefaultSeed()
		seed = &d
	}
	if err := applySeed(st, *seed, s.clock().UTC()); err != nil {
		return nil, fmt.Errorf("calm simulator: %w", err)
	}
	s.st = st
	s.version = 1
	if err := s.persist(s.version); err != nil {
		return nil, fmt.Errorf("calm simulator: write state file: %w", err)
	}
	return s, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// SetLatency changes the delay added to every call.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

// SetFailRate changes the fraction of calls answered 503 (clamped to 0..1).
func (s *Server) SetFailRate(f float64) {
	s.failRate.Store(math.Float64bits(math.Max(0, math.Min(1, f))))
}

// SetLaunchFailRate changes the fraction of launches that end in failure.
func (s *Server) SetLaunchFailRate(f float64) {
	s.mu.Lock()
	s.launchFailRate = math.Max(0, math.Min(1, f))
	s.mu.Unlock()
}

// FailNextLaunches makes the next n launches end in failure with message
// (their pending launch reports it; no app is created).
func (s *Server) FailNextLaunches(n int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		s.failLaunches = append(s.failLaunches, message)
	}
}

// FailNextProvisions makes the apps of the next n successful launches end
// in error; their create runlog fails with message.
func (s *Server) FailNextProvisions(n int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		s.failProvisions = append(s.failProvisions, message)
	}
}

func (s *Server) chance(rate float64) bool {
	if rate <= 0 {
		return false
	}
	if rate >= 1 {
		return true
	}
	s.randMu.Lock()
	defer s.randMu.Unlock()
	return s.rand.Float64() < rate
}

func (s *Server) now() time.Time { return s.clock().UTC() }

// persist writes the state file if version v is not on disk yet. Writers
// queue on persistMu; whoever gets it writes the newest state, so a burst
// of concurrent changes costs one write, not one each.
func (s *Server) persist(v uint64) error {
	if s.statePath == "" {
		return nil
	}
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	if s.saved >= v {
		return nil
	}
	s.mu.RLock()
	data, err := s.st.marshal()
	cur := s.version
	s.mu.RUnlock()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.statePath, data, 0o600); err != nil {
		return err
	}
	s.saved = cur
	return nil
}

// change runs fn under the write lock and, if it succeeded, persists. A
// failed write is logged and reported: the change is in memory but would
// not survive a restart.
func (s *Server) change(fn func(st *store, now time.Time) *apiError) *apiError {
	s.mu.Lock()
	err := fn(s.st, s.now())
	if err == nil {
		s.version++
	}
	v := s.version
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if perr := s.persist(v); perr != nil {
		s.log.Error("could not write state file", "path", s.statePath, "error", perr)
		return errInternal("", "the change was applied but could not be saved: %v", perr)
	}
	return nil
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves in the background,
// over TLS when Options.TLSConfig is set. It returns the server's root URL,
// e.g. https://127.0.0.1:41234, which is what clients are configured with
// (the API is under BasePath).
func (s *Server) Start(addr string) (string, error) {
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	if s.httpSrv != nil {
		return "", errors.New("calm simulator: already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("calm simulator: listen: %w", err)
	}
	scheme := "http"
	if s.tlsConfig != nil {
		ln = tls.NewListener(ln, s.tlsConfig.Clone())
		scheme = "https"
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: s.log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug})}
	s.httpSrv = srv
	s.baseURL = scheme + "://" + ln.Addr().String()
	go func() { // srv, not s.httpSrv: Close clears that field
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve failed", "error", err)
		}
	}()
	return s.baseURL, nil
}

// URL is the root URL after Start ("" before).
func (s *Server) URL() string {
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	return s.baseURL
}

// Close stops a server started with Start, waiting for calls in flight.
// State is already on disk after every change; Close writes nothing.
func (s *Server) Close() error {
	s.httpMu.Lock()
	srv := s.httpSrv
	s.httpSrv = nil
	s.httpMu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// --- HTTP ------------------------------------------------------------------

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ServeHTTP serves /api/nutanix/v3/...
func (s *Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusWriter{ResponseWriter: rw}
	user := ""
	defer func() {
		// Never headers or bodies: they carry credentials and secrets.
		s.log.Debug("calm call", "method", r.Method, "path", r.URL.Path, "status", w.status,
			"user", user, "duration", time.Since(start))
	}()

	rest, ok := strings.CutPrefix(r.URL.Path, BasePath+"/")
	if !ok {
		writeHTML(w, http.StatusNotFound, "<html><body><h1>404 Not Found</h1></body></html>\n")
		return
	}
	if d := time.Duration(s.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if s.chance(math.Float64frombits(s.failRate.Load())) {
		if s.retryAft > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Max(1, math.Ceil(s.retryAft.Seconds())))))
		}
		writeHTML(w, http.StatusServiceUnavailable, unavailablePage)
		return
	}
	user, ok = s.authenticate(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="Intent Gateway"`)
		writeHTML(w, http.StatusUnauthorized, unauthorizedPage)
		return
	}
	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			writeError(w, errBadRequest("", "could not read the request body"))
			return
		}
	}
	s.route(w, r.Method, strings.Split(strings.Trim(rest, "/"), "/"), r.URL.Query(), body, user)
}

// authenticate accepts HTTP Basic credentials or an X-Ntnx-Api-Key; Basic
// wins when both are sent. Comparisons take the same time for unknown
// users, so timing does not reveal names.
func (s *Server) authenticate(r *http.Request) (string, bool) {
	if u, p, ok := r.BasicAuth(); ok {
		want, known := s.users[u]
		if !known {
			want = "\x00unknown-user"
		}
		if subtle.ConstantTimeCompare([]byte(p), []byte(want)) != 1 || !known {
			return "", false
		}
		return u, true
	}
	if k := r.Header.Get("X-Ntnx-Api-Key"); k != "" {
		who, found := "", 0
		for name, key := range s.apiKeys {
			if subtle.ConstantTimeCompare([]byte(k), []byte(key)) == 1 {
				who, found = name, found+1
			}
		}
		return who, found > 0
	}
	return "", false
}

// route dispatches on the path below BasePath.
func (s *Server) route(w http.ResponseWriter, method string, seg []string, q map[string][]string, body []byte, user string) {
	kinds := map[string]string{"projects": "project", "environments": "environment", "blueprints": "blueprint", "apps": "app"}
	kind, ok := kinds[seg[0]]
	if !ok {
		writeError(w, newError(http.StatusNotFound, "", ReasonNotFound, "no such API: %s/%s", BasePath, strings.Join(seg, "/")))
		return
	}
	allow := func(want string) bool {
		if method == want {
			return true
		}
		writeError(w, newError(http.StatusMethodNotAllowed, kind, ReasonNotAllowed,
			"method %s is not allowed on %s/%s (use %s)", method, BasePath, strings.Join(seg, "/"), want))
		return false
	}
	if len(seg) == 2 && seg[1] == "list" {
		if allow(http.MethodPost) {
			s.list(w, kind, "", body)
		}
		return
	}
	if len(seg) < 2 {
		writeError(w, newError(http.StatusNotFound, kind, ReasonNotFound, "no such API: %s/%s", BasePath, seg[0]))
		return
	}
	id := seg[1]
	if !isUUID(id) {
		writeError(w, newError(http.StatusBadRequest, kind, ReasonInvalidUUID, "%q is not a valid %s uuid", id, kind))
		return
	}
	sub := strings.Join(seg[2:], "/")
	switch {
	case sub == "":
		switch {
		case kind == "app" && method == http.MethodDelete:
			soft := false
			if t := q["type"]; len(t) > 0 {
				if t[0] != "soft" {
					writeError(w, errBadRequest(kind, "delete type %q is not supported (use type=soft or none)", t[0]).withField("type"))
					return
				}
				soft = true
			}
			s.deleteApp(w, id, soft, user)
		case allow(http.MethodGet):
			s.get(w, kind, id)
		}
	case kind == "blueprint" && sub == "runtime_editables":
		if allow(http.MethodGet) {
			s.runtimeEditables(w, id)
		}
	case kind == "blueprint" && sub == "simple_launch":
		if allow(http.MethodPost) {
			s.simpleLaunch(w, id, body, user)
		}
	case kind == "blueprint" && len(seg) == 4 && seg[2] == "pending_launches":
		if allow(http.MethodGet) {
			s.pendingLaunch(w, id, seg[3])
		}
	case kind == "app" && sub == "actions/run":
		if allow(http.MethodPost) {
			s.runAction(w, id, "", body, user)
		}
	case kind == "app" && len(seg) == 5 && seg[2] == "actions" && seg[4] == "run":
		if allow(http.MethodPost) {
			s.runAction(w, id, seg[3], body, user)
		}
	case kind == "app" && sub == "app_runlogs/list":
		if allow(http.MethodPost) {
			s.list(w, "app_runlog", id, body)
		}
	case kind == "app" && len(seg) == 5 && seg[2] == "app_runlogs" && seg[4] == "output":
		if allow(http.MethodGet) {
			s.runlogOutput(w, id, seg[3])
		}
	default:
		writeError(w, newError(http.StatusNotFound, kind, ReasonNotFound, "no such API: %s/%s", BasePath, strings.Join(seg, "/")))
	}
}

// decodeBody decodes raw into v; an error names the field at fault.
func decodeBody(kind string, raw []byte, v any) *apiError {
	if len(strings.TrimSpace(string(raw))) == 0 {
		raw = []byte("{}")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return errBadRequest(kind, "field %s must be %s, not %s", te.Field, jsonTypeName(te.Type.Kind().String()), te.Value).withField(te.Field)
		}
		return errBadRequest(kind, "the request body is not valid JSON: %v", err)
	}
	return nil
}

func jsonTypeName(goKind string) string {
	switch goKind {
	case "int", "int64", "int32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice":
		return "a list"
	}
	return "an object"
}
