// Command hookload is the flow load script's generator for webhooks: wrk
// cannot sign each request, and a webhook takes each signature once, so
// every request here carries a body of its own (about 4 KiB of JSON, as a
// GitHub push event is) with its X-Hub-Signature-256. Run with -invoke, it
// sends the same bodies to the invoke endpoint with a bearer token instead,
// so both are measured by one generator. It prints "req/s p50 p99".
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "", "the webhook (or invoke) URL")
	secret := flag.String("secret", "", "the webhook's secret")
	bearer := flag.String("bearer", "", "send this bearer token instead of a signature (invoke)")
	conns := flag.Int("c", 64, "concurrent requests")
	dur := flag.Duration("d", 10*time.Second, "duration")
	want := flag.Int("status", http.StatusAccepted, "the status every answer must have")
	flag.Parse()
	pad := strings.Repeat("x", 4000)
	var seq atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conns}}
	deadline := time.Now().Add(*dur)
	var mu sync.Mutex
	var lat []time.Duration
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(deadline) {
				body := fmt.Appendf(nil, `{"message":"push %d","pad":"%s"}`, seq.Add(1), pad)
				req, _ := http.NewRequest(http.MethodPost, *url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if *bearer != "" {
					req.Header.Set("Authorization", "Bearer "+*bearer)
				} else {
					m := hmac.New(sha256.New, []byte(*secret))
					m.Write(body)
					req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
				}
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != *want {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 || len(lat) == 0 {
		log.Fatalf("%d requests failed or had another status than %d", n, *want)
	}
	slices.Sort(lat)
	fmt.Printf("%.0f %.2fms %.2fms\n", float64(len(lat))/dur.Seconds(),
		float64(lat[len(lat)/2])/1e6, float64(lat[len(lat)*99/100])/1e6)
}
