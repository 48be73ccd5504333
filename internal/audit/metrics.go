package audit

import "github.com/prometheus/client_golang/prometheus"

// collector exports a Writer's Stats. It reads the writer's atomic counters
// at scrape time, so Record pays nothing for metrics beyond those counters.
type collector struct {
	w                                            *Writer
	written, batches, writeErrors, dropped, lost *prometheus.Desc
	queued, capacity, healthy                    *prometheus.Desc
}

func newCollector(w *Writer) *collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("flowgate_audit_"+name, help, nil, nil)
	}
	return &collector{
		w:           w,
		written:     d("events_written_total", "Audit events committed to the database."),
		batches:     d("batches_total", "Group commits of audit events (successful AppendAudit calls)."),
		writeErrors: d("write_errors_total", "Failed attempts to write a batch of audit events, retries included."),
		dropped:     d("events_dropped_total", "Audit events refused because the queue stayed full or the writer was closed."),
		lost:        d("events_lost_total", "Audit events queued but never written: their batch was still failing at shutdown, or shutdown ran out of time."),
		queued:      d("queue_length", "Audit events waiting to be written."),
		capacity:    d("queue_capacity", "Size of the audit event queue."),
		healthy:     d("healthy", "1 while audit events are being written, 0 while writes fail or the queue is full (sign-ins and token requests are refused)."),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.written, c.batches, c.writeErrors, c.dropped, c.lost, c.queued, c.capacity, c.healthy} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.w.Stats()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(c.written, s.Written)
	counter(c.batches, s.Batches)
	counter(c.writeErrors, s.WriteErrors)
	counter(c.dropped, s.Dropped)
	counter(c.lost, s.Lost)
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(s.Queued))
	ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(c.w.opts.QueueSize))
	healthy := 1.0
	if c.w.Healthy() != nil {
		healthy = 0
	}
	ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, healthy)
}
