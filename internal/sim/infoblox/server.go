package infoblox

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sas-platform/terraform-provider-sas/internal/atomicfile"
)

// APIVersion is the WAPI version the simulator implements. Requests for
// this or any earlier 2.x version are served; later ones are refused, as
// the appliance does.
const APIVersion = "2.12"

// Options configure a Server.
type Options struct {
	// StatePath is the JSON file the grid's objects are kept in. It is
	// rewritten atomically after every change and read back by New, so
	// the grid survives restarts. Empty keeps everything in memory.
	StatePath string
	// Users maps user names to passwords for HTTP Basic authentication.
	// At least one is required. Credentials are configuration: they are
	// never written to the state file or logged.
	Users map[string]string
	// NetworkViews are created at start if missing ("default" always exists).
	NetworkViews []string
	// Networks are created at start if missing (matched by CIDR and
	// network view); their network views are created as needed.
	Networks []SeedNetwork
	// EADefinitions are created at start if missing. Extensible attributes
	// named in Networks are defined automatically as STRING.
	EADefinitions []SeedEADefinition
	// Latency is added to every call before it is served.
	Latency time.Duration
	// FailRate is the fraction (0..1) of calls answered 503 Service
	// Unavailable, as a grid that is restarting or overloaded does.
	FailRate float64
	// SessionTimeout is the idle lifetime of an ibapauth cookie (default 10m).
	SessionTimeout time.Duration
	// Logger receives one line per call (method, path, status, user); nil
	// discards.
	Logger hclog.Logger
	// Rand drives FailRate; set it in tests for reproducible failures.
	Rand *mrand.Rand
	// TLS, when set, makes Start serve HTTPS with it, as a grid master
	// does: the vendor's own client and Terraform provider speak only https.
	TLSConfig *tls.Config
}

// SeedNetwork is a network the grid starts with.
type SeedNetwork struct {
	Network     string            // CIDR, e.g. 10.10.0.0/24
	NetworkView string            // default "default"
	Comment     string            //
	EAs         map[string]string // extensible attributes
	// Gateway, when set, is reserved as the network's router (a fixed
	// address), as sites do: nextavailableip never hands it out.
	Gateway string
}

// SeedEADefinition is an extensible attribute definition the grid starts with.
type SeedEADefinition struct {
	Name    string
	Type    string // STRING (default), INTEGER, EMAIL, URL, DATE, ENUM
	Comment string
}

var _ http.Handler = (*Server)(nil)

// Server is a simulated Infoblox NIOS grid master speaking WAPI over HTTP.
// It is an http.Handler: mount it anywhere (paths start with /wapi/), or
// use Start to listen on an address.
type Server struct {
	log            hclog.Logger
	statePath      string
	users          map[string]string
	sessionTimeout time.Duration

	latency  atomic.Int64  // time.Duration
	failRate atomic.Uint64 // math.Float64bits
	randMu   sync.Mutex
	rand     *mrand.Rand

	mu      sync.RWMutex // guards st and version
	st      *store
	version uint64 // bumped by every change

	persistMu sync.Mutex // serialises state file writes; taken before mu
	saved     uint64     // version last written

	sessMu    sync.Mutex
	sessions  map[string]*session
	lastSweep time.Time

	pageMu sync.Mutex
	pages  map[string]*pageCursor

	tls     *tls.Config
	httpMu  sync.Mutex
	httpSrv *http.Server
	baseURL string
}

type session struct {
	user    string
	expires time.Time
}

type pageCursor struct {
	objtype string
	seqs    []uint64
	next    int
	size    int
	fields  []string
	expires time.Time
}

// New loads the state file (if any), applies the seeds and returns a
// ready Server.
func New(opts Options) (*Server, error) {
	if len(opts.Users) == 0 {
		return nil, errors.New("infoblox simulator: at least one user is required")
	}
	for u, p := range opts.Users {
		if u == "" || p == "" {
			return nil, errors.New("infoblox simulator: user names and passwords must not be empty")
		}
	}
	if opts.FailRate < 0 || opts.FailRate > 1 {
		return nil, fmt.Errorf("infoblox simulator: FailRate %v is outside 0..1", opts.FailRate)
	}
	s := &Server{
		log:            opts.Logger,
		statePath:      opts.StatePath,
		users:          make(map[string]string, len(opts.Users)),
		sessionTimeout: opts.SessionTimeout,
		rand:           opts.Rand,
		sessions:       map[string]*session{},
		pages:          map[string]*pageCursor{},
		tls:            opts.TLSConfig,
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	if s.sessionTimeout <= 0 {
		s.sessionTimeout = 10 * time.Minute
	}
	if s.rand == nil {
		s.rand = mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
	}
	for u, p := range opts.Users {
		s.users[u] = p
	}
	s.SetLatency(opts.Latency)
	s.SetFailRate(opts.FailRate)

	st := newStore()
	if opts.StatePath != "" {
		var err error
		if st, err = loadState(opts.StatePath); err != nil {
			return nil, fmt.Errorf("infoblox simulator: %w", err)
		}
	}
	if err := seed(st, opts); err != nil {
		return nil, fmt.Errorf("infoblox simulator: %w", err)
	}
	s.st = st
	s.version = 1
	if err := s.persist(s.version); err != nil {
		return nil, fmt.Errorf("infoblox simulator: write state file: %w", err)
	}
	return s, nil
}

func seed(st *store, opts Options) error {
	st.ensureNetworkView("default")
	for _, nv := range opts.NetworkViews {
		st.ensureNetworkView(nv)
	}
	for _, d := range opts.EADefinitions {
		if st.eaDef(d.Name) != nil {
			continue
		}
		t := d.Type
		if t == "" {
			t = "STRING"
		}
		if !eaTypes[t] {
			return fmt.Errorf("extensible attribute definition %s: unknown type %s", d.Name, t)
		}
		def := &eaDefinition{Name: d.Name, Type: t, Comment: d.Comment}
		def.Seq = st.nextSeq()
		st.eaDefs[def.Seq] = def
	}
	for _, sn := range opts.Networks {
		p, err := parseNetwork(sn.Network)
		if err != nil {
			return fmt.Errorf("seed network: %v", err)
		}
		nv := sn.NetworkView
		if nv == "" {
			nv = "default"
		}
		st.ensureNetworkView(nv)
		if st.networkByCIDR(nv, p.String()) != nil {
			continue
		}
		for _, o := range st.networks {
			if o.NetworkView == nv && o.prefix().Overlaps(p) {
				return fmt.Errorf("seed network %s overlaps %s in network view %s", p, o.Network, nv)
			}
		}
		n := &network{Network: p.String(), NetworkView: nv, Comment: sn.Comment}
		for k, v := range sn.EAs {
			if st.eaDef(k) == nil {
				def := &eaDefinition{Name: k, Type: "STRING"}
				def.Seq = st.nextSeq()
				st.eaDefs[def.Seq] = def
			}
			if n.ExtAttrs == nil {
				n.ExtAttrs = map[string]any{}
			}
			n.ExtAttrs[k] = v
		}
		n.Seq = st.nextSeq()
		st.networks[n.Seq] = n
		if sn.Gateway != "" {
			gw, err := netip.ParseAddr(sn.Gateway)
			if err != nil || !p.Contains(gw) {
				return fmt.Errorf("seed network %s: gateway %q is not an address in it", p, sn.Gateway)
			}
			f := &fixedAddress{IPv4Addr: gw.String(), NetworkView: nv, Name: "gateway", Comment: "router", MAC: "00:00:00:00:00:00"}
			f.Seq = st.nextSeq()
			st.fixed[f.Seq] = f
		}
	}
	return nil
}

// SetLatency changes the delay added to every call.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

// SetFailRate changes the fraction of calls answered 503 (clamped to 0..1).
func (s *Server) SetFailRate(f float64) {
	s.failRate.Store(math.Float64bits(math.Max(0, math.Min(1, f))))
}

func (s *Server) shouldFail() bool {
	rate := math.Float64frombits(s.failRate.Load())
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

// persist writes the state file if version v is not on disk yet. Writers
// queue on persistMu; whoever gets it writes the newest state, so a burst
// of concurrent changes costs one write, not one each (group commit).
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

// Start listens on addr (e.g. "127.0.0.1:0") and serves in the background.
// It returns the WAPI base URL, e.g. http://127.0.0.1:41234/wapi/v2.12.
func (s *Server) Start(addr string) (string, error) {
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	if s.httpSrv != nil {
		return "", errors.New("infoblox simulator: already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("infoblox simulator: listen: %w", err)
	}
	scheme := "http"
	if s.tls != nil {
		ln, scheme = tls.NewListener(ln, s.tls), "https"
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.httpSrv = srv
	s.baseURL = scheme + "://" + ln.Addr().String() + "/wapi/v" + APIVersion
	go func() { // srv, not s.httpSrv: Close clears that field
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve failed", "error", err)
		}
	}()
	return s.baseURL, nil
}

// URL is the WAPI base URL after Start ("" before).
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

// ServeHTTP serves /wapi/v<version>/...
func (s *Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusWriter{ResponseWriter: rw}
	user := ""
	defer func() {
		// Never the query (it may carry search values) and never headers.
		s.log.Debug("wapi call", "method", r.Method, "path", r.URL.Path, "status", w.status,
			"user", user, "duration", time.Since(start))
	}()

	rest, ok := strings.CutPrefix(r.URL.Path, "/wapi/v")
	if !ok {
		writeHTML(w, http.StatusNotFound, notFoundPage)
		return
	}
	version, rest, _ := strings.Cut(rest, "/")
	if d := time.Duration(s.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if s.shouldFail() {
		writeHTML(w, http.StatusServiceUnavailable, unavailablePage)
		return
	}
	user, ok = s.authenticate(w, r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="InfoBlox ONE Platform"`)
		writeHTML(w, http.StatusUnauthorized, unauthorizedPage)
		return
	}
	if !versionSupported(version) {
		writeError(w, errProto("Version %s not supported", version))
		return
	}
	if rest == "logout" {
		s.logout(w, r)
		return
	}
	s.serveWAPI(w, r, rest)
}

func versionSupported(v string) bool {
	parts := strings.Split(v, ".")
	if len(parts) < 2 || parts[0] != "2" {
		return parts[0] == "1" && len(parts) >= 2
	}
	minor, err := strconv.Atoi(parts[1])
	return err == nil && minor <= 12
}

// authenticate accepts HTTP Basic credentials (and then issues an ibapauth
// cookie) or a live ibapauth cookie. Basic wins when both are present.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	if u, p, ok := r.BasicAuth(); ok {
		want, known := s.users[u]
		// Compare even for unknown users so timing does not reveal names.
		if !known {
			want = "\x00unknown-user"
		}
		if subtle.ConstantTimeCompare([]byte(p), []byte(want)) != 1 || !known {
			return "", false
		}
		if cu, ok := s.cookieUser(r); !ok || cu != u {
			s.issueCookie(w, r, u)
		}
		return u, true
	}
	return s.cookieUser(r)
}

// cookieUser returns the user of a live ibapauth cookie and extends it.
func (s *Server) cookieUser(r *http.Request) (string, bool) {
	c, err := r.Cookie("ibapauth")
	if err != nil || c.Value == "" {
		return "", false
	}
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	sess, ok := s.sessions[c.Value]
	if !ok || time.Now().After(sess.expires) {
		delete(s.sessions, c.Value)
		return "", false
	}
	sess.expires = time.Now().Add(s.sessionTimeout)
	return sess.user, true
}

func (s *Server) issueCookie(w http.ResponseWriter, r *http.Request, user string) {
	var b [24]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	now := time.Now()
	s.sessMu.Lock()
	if now.Sub(s.lastSweep) > time.Minute { // drop expired sessions now and then
		for k, v := range s.sessions {
			if now.After(v.expires) {
				delete(s.sessions, k)
			}
		}
		s.lastSweep = now
	}
	s.sessions[token] = &session{user: user, expires: now.Add(s.sessionTimeout)}
	s.sessMu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "ibapauth", Value: token, Path: "/",
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, errProto("Method %s is not allowed for logout", r.Method))
		return
	}
	if c, err := r.Cookie("ibapauth"); err == nil {
		s.sessMu.Lock()
		delete(s.sessions, c.Value)
		s.sessMu.Unlock()
	}
	// Also drop the session issued for this very call, if Basic was used.
	for _, sc := range w.Header().Values("Set-Cookie") {
		if v, ok := strings.CutPrefix(sc, "ibapauth="); ok {
			v, _, _ = strings.Cut(v, ";")
			s.sessMu.Lock()
			delete(s.sessions, v)
			s.sessMu.Unlock()
		}
	}
	w.Header().Del("Set-Cookie")
	http.SetCookie(w, &http.Cookie{Name: "ibapauth", Value: "", Path: "/", MaxAge: -1,
		Expires: time.Unix(0, 0), HttpOnly: true, Secure: r.TLS != nil})
	w.WriteHeader(http.StatusOK)
}

// splitRef splits "objtype/data:readable" into objtype and data.
func splitRef(ref string) (objtype, data string, ok bool) {
	objtype, rest, ok := strings.Cut(ref, "/")
	if !ok {
		return ref, "", false
	}
	data, _, _ = strings.Cut(rest, ":")
	data, _, _ = strings.Cut(data, "/")
	return objtype, data, data != ""
}

func (s *Server) serveWAPI(w http.ResponseWriter, r *http.Request, rest string) {
	q, werr := parseQuery(r.URL.RawQuery)
	if werr != nil {
		writeError(w, werr)
		return
	}
	if rest == "" {
		if q.schema && r.Method == http.MethodGet {
			s.writeResult(w, http.StatusOK, q, map[string]any{
				"requested_version":  APIVersion,
				"supported_versions": []string{"2.10", "2.11", "2.12"},
				"supported_objects":  supportedObjects(),
			})
			return
		}
		writeError(w, errProto("Unknown object type ()"))
		return
	}
	objtype, data, isRef := splitRef(rest)
	spec := objectSpecs[objtype]
	if spec == nil {
		writeError(w, errProto("Unknown object type (%s)", objtype))
		return
	}
	if strings.Contains(rest, "/") && !isRef {
		writeError(w, errNotFound("Reference %s not found", rest))
		return
	}
	var raw []byte
	if r.Body != nil {
		var err error
		raw, err = io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			writeError(w, errProto("Could not read request body"))
			return
		}
	}
	switch {
	case r.Method == http.MethodGet && !isRef:
		s.search(w, q, spec)
	case r.Method == http.MethodGet:
		s.read(w, q, spec, rest, data)
	case r.Method == http.MethodPost && !isRef:
		s.mutate(w, q, spec, http.StatusCreated, raw, false, func(st *store, b body) (object, *wapiError) {
			return st.create(objtype, b)
		})
	case r.Method == http.MethodPost:
		s.function(w, q, spec, rest, data, raw)
	case r.Method == http.MethodPut && isRef:
		s.mutate(w, q, spec, http.StatusOK, raw, false, func(st *store, b body) (object, *wapiError) {
			o := st.resolve(objtype, data)
			if o == nil {
				return nil, errNotFound("Reference %s not found", rest)
			}
			return st.update(o, b)
		})
	case r.Method == http.MethodDelete && isRef:
		s.mutate(w, q, spec, http.StatusOK, nil, true, func(st *store, _ body) (object, *wapiError) {
			o := st.resolve(objtype, data)
			if o == nil {
				return nil, errNotFound("Reference %s not found", rest)
			}
			return o, st.delete(o)
		})
	case r.Method == http.MethodPut || r.Method == http.MethodDelete:
		writeError(w, errProto("%s requires an object reference", r.Method))
	default:
		writeError(w, errProto("Method %s is not supported", r.Method))
	}
}

// writeResult writes v, wrapped in {"result": v} when _return_as_object=1.
func (s *Server) writeResult(w http.ResponseWriter, status int, q *queryArgs, v any) {
	if q.asObject {
		v = map[string]any{"result": v}
	}
	writeJSON(w, status, q.pretty, v)
}

func writeJSON(w http.ResponseWriter, status int, pretty bool, v any) {
	var out []byte
	var err error
	if pretty {
		out, err = json.MarshalIndent(v, "", "    ")
	} else {
		out, err = json.Marshal(v)
	}
	if err != nil {
		writeError(w, errServer("could not encode the response"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

func (s *Server) read(w http.ResponseWriter, q *queryArgs, spec *objectSpec, ref, data string) {
	fields, werr := q.fieldSet(spec)
	if werr != nil {
		writeError(w, werr)
		return
	}
	s.mu.RLock()
	o := s.st.resolve(spec.name, data)
	var out map[string]any
	if o != nil {
		out = project(s.st.render(o), fields)
	}
	s.mu.RUnlock()
	if o == nil {
		writeError(w, errNotFound("Reference %s not found", ref))
		return
	}
	s.writeResult(w, http.StatusOK, q, out)
}

func (s *Server) search(w http.ResponseWriter, q *queryArgs, spec *objectSpec) {
	if q.pageID != "" {
		s.nextPage(w, q)
		return
	}
	if q.paging && !q.asObject {
		writeError(w, errProto("_return_as_object needs to be enabled for paging requests."))
		return
	}
	filters, werr := q.filters(spec)
	if werr != nil {
		writeError(w, werr)
		return
	}
	fields, werr := q.fieldSet(spec)
	if werr != nil {
		writeError(w, werr)
		return
	}
	s.mu.RLock()
	var hits []object
	for _, o := range s.st.objects(spec.name) {
		ok := true
		for _, f := range filters {
			if ok = s.st.match(f, o); !ok {
				break
			}
		}
		if ok {
			hits = append(hits, o)
		}
	}
	if q.paging {
		size := q.maxResults
		if size < 0 {
			size = -size
		}
		c := &pageCursor{objtype: spec.name, size: size, fields: fields, expires: time.Now().Add(10 * time.Minute)}
		for _, o := range hits {
			c.seqs = append(c.seqs, o.base().Seq)
		}
		s.mu.RUnlock()
		s.servePage(w, q, c)
		return
	}
	if q.maxResults < 0 && len(hits) > -q.maxResults {
		s.mu.RUnlock()
		writeError(w, errProto("Result set too large (> %d)", -q.maxResults))
		return
	}
	if q.maxResults > 0 && len(hits) > q.maxResults {
		hits = hits[:q.maxResults]
	}
	out := make([]any, 0, len(hits))
	for _, o := range hits {
		out = append(out, project(s.st.render(o), fields))
	}
	s.mu.RUnlock()
	s.writeResult(w, http.StatusOK, q, out)
}

// servePage renders the next page of c; objects deleted since the first
// page are skipped.
func (s *Server) servePage(w http.ResponseWriter, q *queryArgs, c *pageCursor) {
	out := make([]any, 0, c.size)
	s.mu.RLock()
	for c.next < len(c.seqs) && len(out) < c.size {
		o := s.st.bySeq(c.objtype, c.seqs[c.next])
		c.next++
		if o != nil {
			out = append(out, project(s.st.render(o), c.fields))
		}
	}
	s.mu.RUnlock()
	res := map[string]any{"result": out}
	if c.next < len(c.seqs) {
		var b [20]byte
		_, _ = rand.Read(b[:])
		id := "789c" + hex.EncodeToString(b[:])
		s.pageMu.Lock()
		now := time.Now()
		for k, v := range s.pages {
			if now.After(v.expires) {
				delete(s.pages, k)
			}
		}
		s.pages[id] = c
		s.pageMu.Unlock()
		res["next_page_id"] = id
	}
	writeJSON(w, http.StatusOK, q.pretty, res)
}

func (s *Server) nextPage(w http.ResponseWriter, q *queryArgs) {
	s.pageMu.Lock()
	c, ok := s.pages[q.pageID]
	delete(s.pages, q.pageID) // a page id is good for one use
	s.pageMu.Unlock()
	if !ok || time.Now().After(c.expires) {
		writeError(w, errProto("Page id %s is invalid or has expired", q.pageID))
		return
	}
	s.servePage(w, q, c)
}

// mutate runs change under the write lock, persists, and answers with the
// object's reference (or, with _return_fields, the object). For a delete,
// change returns the object it removed and the answer is its reference.
func (s *Server) mutate(w http.ResponseWriter, q *queryArgs, spec *objectSpec, status int, raw []byte,
	deleting bool, change func(*store, body) (object, *wapiError)) {
	b, werr := decodeBody(raw)
	if werr != nil {
		writeError(w, werr)
		return
	}
	var fields []string
	if q.hasReturnFields && !deleting {
		if fields, werr = q.fieldSet(spec); werr != nil {
			writeError(w, werr)
			return
		}
	}
	s.mu.Lock()
	o, werr := change(s.st, b)
	var result any
	if werr == nil {
		s.version++
		if fields != nil {
			result = project(s.st.render(o), fields)
		} else {
			result = refOf(o)
		}
	}
	v := s.version
	s.mu.Unlock()
	if werr != nil {
		writeError(w, werr)
		return
	}
	if err := s.persist(v); err != nil {
		s.log.Error("could not write state file", "path", s.statePath, "error", err)
		writeError(w, errServer("The change was applied but could not be saved: %v", err))
		return
	}
	s.writeResult(w, status, q, result)
}

func (s *Server) function(w http.ResponseWriter, q *queryArgs, spec *objectSpec, ref, data string, raw []byte) {
	if q.function == "" {
		writeError(w, errProto("POST on an object reference requires _function"))
		return
	}
	if !spec.functions[q.function] {
		writeError(w, errProto("Function %s is not valid for this object", q.function))
		return
	}
	b, werr := decodeBody(raw)
	if werr != nil {
		writeError(w, werr)
		return
	}
	s.mu.RLock()
	n, _ := s.st.resolve(spec.name, data).(*network)
	var res any
	if n == nil {
		werr = errNotFound("Reference %s not found", ref)
	} else {
		res, werr = s.st.networkFunction(n, q, b)
	}
	s.mu.RUnlock()
	if werr != nil {
		writeError(w, werr)
		return
	}
	s.writeResult(w, http.StatusOK, q, res)
}

// --- admin view (tests, demos) ------------------------------------------------

// HostSnapshot is a host record as the grid holds it.
type HostSnapshot struct {
	Ref         string
	Name        string
	View        string
	NetworkView string
	IPv4Addrs   []string
	MACs        []string
	Aliases     []string
	Comment     string
	EAs         map[string]string
}

// Hosts returns every host record, oldest first. It is a read-only view
// for tests and demos; clients must use WAPI.
func (s *Server) Hosts() []HostSnapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []HostSnapshot
	for _, h := range ordered(s.st.hosts) {
		hs := HostSnapshot{Ref: refOf(h), Name: h.Name, View: h.View, NetworkView: h.NetworkView,
			Aliases: append([]string(nil), h.Aliases...), Comment: h.Comment, EAs: map[string]string{}}
		for _, a := range h.Addrs {
			hs.IPv4Addrs = append(hs.IPv4Addrs, a.IPv4Addr)
			hs.MACs = append(hs.MACs, a.MAC)
		}
		for k, v := range h.ExtAttrs {
			hs.EAs[k] = strings.Join(eaStrings(v), ",")
		}
		out = append(out, hs)
	}
	return out
}
