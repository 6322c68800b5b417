package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// gatewayMetrics are what an operator alerts on: refusals, denials, audit
// failures (which stop the gateway acting) and latency.
type gatewayMetrics struct {
	registry     *prometheus.Registry
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	refusals     *prometheus.CounterVec
	decisions    *prometheus.CounterVec
	auditFailure prometheus.Counter
	rateLimited  prometheus.Counter
}

func newGatewayMetrics() *gatewayMetrics {
	m := &gatewayMetrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sas_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sas_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sas_caller_refusals_total", Help: "Requests refused at the token boundary, by problem type.",
		}, []string{"type"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sas_policy_decisions_total", Help: "Policy decisions by bundle and result.",
		}, []string{"bundle", "allow"}),
		auditFailure: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sas_audit_write_failures_total", Help: "Audit writes that failed; each failed its request with 503.",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sas_rate_limited_total", Help: "Requests answered 429.",
		}),
	}
	m.registry.MustRegister(m.requests, m.duration, m.refusals, m.decisions, m.auditFailure, m.rateLimited,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *gatewayMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// observe records a finished request under its route template (never the
// raw path, which would make one series per resource id).
func (m *gatewayMetrics) observe(r *http.Request, status int, took time.Duration) {
	route := "unmatched"
	if cr := mux.CurrentRoute(r); cr != nil {
		if t, err := cr.GetPathTemplate(); err == nil {
			route = r.Method + " " + t
		}
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(took.Seconds())
}

func boolLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
