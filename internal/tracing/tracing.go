// Package tracing sends OpenTelemetry traces over OTLP/HTTP: a span for
// every request Flowgate serves, every step an instance runs and every
// outbound HTTP call, with the W3C traceparent header sent on the calls
// (docs/operations.md). It is off unless the standard OTEL_ variables name
// an endpoint; off, every method is a cheap no-op.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing is the server's tracer and how it propagates context. The zero
// value and nil are off.
type Tracing struct {
	tracer     trace.Tracer
	provider   *sdktrace.TracerProvider
	propagator propagation.TextMapPropagator
}

// Enabled reports whether getenv configures an OTLP endpoint for traces
// and does not switch them off: OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set, OTEL_SDK_DISABLED not true,
// OTEL_TRACES_EXPORTER not "none".
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(getenv("OTEL_TRACES_EXPORTER"), "none") {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// New starts tracing when getenv enables it (see Enabled), else returns
// nil, which is off. The exporter reads the rest of its settings (headers,
// timeout, compression, TLS) from the standard OTEL_EXPORTER_OTLP_
// variables, and the resource from OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES; sampling follows OTEL_TRACES_SAMPLER (default:
// every trace, unless the caller's traceparent says not to).
func New(ctx context.Context, getenv func(string) string, version string) (*Tracing, error) {
	if !Enabled(getenv) {
		return nil, nil
	}
	if p := getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); p != "" && p != "http/protobuf" {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: %q is not supported; Flowgate exports OTLP over HTTP (http/protobuf)", p)
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("flowgate"), semconv.ServiceVersion(version)),
		resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Tracing{
		tracer:     tp.Tracer("github.com/flowgate/flowgate"),
		provider:   tp,
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}, nil
}

// Shutdown sends the spans not yet exported and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.provider == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// Tracer is the tracer spans start from; a no-op tracer when off.
func (t *Tracing) Tracer() trace.Tracer {
	if t == nil || t.tracer == nil {
		return noop.NewTracerProvider().Tracer("")
	}
	return t.tracer
}

// On reports whether spans are recorded.
func (t *Tracing) On() bool { return t != nil && t.tracer != nil }

// StartServer starts the span of a request served, as the child of the
// caller's traceparent when it sent one. The name is the method until
// the route is known (SetRoute).
func (t *Tracing) StartServer(r *http.Request, requestID string) (context.Context, trace.Span) {
	if !t.On() {
		return r.Context(), trace.SpanFromContext(r.Context())
	}
	ctx := t.propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	return t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		semconv.HTTPRequestMethodKey.String(r.Method),
		semconv.URLPath(r.URL.Path),
		attribute.String("flowgate.request_id", requestID),
	))
}

// EndServer names the request's span by its route pattern (a bounded set
// of names, unlike paths) and ends it with the status.
func EndServer(span trace.Span, route string, status int) {
	if !span.IsRecording() {
		return
	}
	if route != "" {
		span.SetName(route)
		span.SetAttributes(semconv.HTTPRoute(route))
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// Transport wraps rt so that every request it sends is a client span,
// child of the span in the request's context, and carries that span's
// traceparent. Off, it returns rt.
func (t *Tracing) Transport(rt http.RoundTripper) http.RoundTripper {
	if !t.On() {
		return rt
	}
	return &transport{t: t, next: rt}
}

type transport struct {
	t    *Tracing
	next http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	// The URL without its query, which may hold keys.
	ctx, span := tr.t.tracer.Start(req.Context(), req.Method+" "+req.URL.Host, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			semconv.HTTPRequestMethodKey.String(req.Method),
			semconv.ServerAddress(req.URL.Hostname()),
			semconv.URLFull(req.URL.Scheme+"://"+req.URL.Host+req.URL.Path),
		))
	defer span.End()
	// RoundTrip must not change the caller's request.
	req = req.Clone(ctx)
	tr.t.propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := tr.next.RoundTrip(req)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "request failed")
		return nil, err
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, resp.Status)
	}
	return resp, nil
}
