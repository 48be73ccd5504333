package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certCheckInterval is how often the certificate files are looked at for
// a change (by modification time and size), on the handshakes that follow.
const certCheckInterval = time.Second

// certReloader hands out the certificate of two PEM files and loads them
// again when either changes, so a renewed certificate is served without a
// restart. A change that does not load (a half-written file) keeps the
// previous certificate and is logged; the next check tries again.
type certReloader struct {
	certFile, keyFile string
	logger            *slog.Logger
	now               func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

func newCertReloader(certFile, keyFile string, logger *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, logger: logger, now: time.Now}
	stamp, err := c.fileStamp()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	c.cert, c.stamp, c.checked = &cert, stamp, c.now()
	return c, nil
}

// fileStamp identifies the files' current contents cheaply.
func (c *certReloader) fileStamp() (string, error) {
	var stamp string
	for _, f := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("tls: %w", err)
		}
		stamp += fmt.Sprintf("%s:%d:%d;", f, fi.ModTime().UnixNano(), fi.Size())
	}
	return stamp, nil
}

// getCertificate is tls.Config's GetCertificate.
func (c *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); now.Sub(c.checked) >= certCheckInterval {
		c.checked = now
		if stamp, err := c.fileStamp(); err != nil {
			c.logger.Error("tls: certificate files cannot be read; serving the previous certificate", "err", err)
		} else if stamp != c.stamp {
			cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
			if err != nil {
				c.logger.Error("tls: changed certificate does not load; serving the previous one", "err", err)
			} else {
				c.cert, c.stamp = &cert, stamp
				c.logger.Info("tls: certificate reloaded", "cert_file", c.certFile)
			}
		}
	}
	return c.cert, nil
}

// SetTLS makes Serve speak HTTPS with the certificate and key in these
// files, re-read when they change. The files are loaded now, so a bad
// pair is reported at start.
func (s *Server) SetTLS(certFile, keyFile string) error {
	c, err := newCertReloader(certFile, keyFile, s.logger)
	if err != nil {
		return err
	}
	s.tls = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.getCertificate}
	return nil
}
