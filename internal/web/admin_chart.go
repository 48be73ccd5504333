package web

import (
	"fmt"
	"slices"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// The dashboard's charts are stacked bars drawn here as SVG, inline in
// the page: a few rectangles need no library, and the chart libraries at
// hand style their output with style attributes, which the pages' CSP
// (no 'unsafe-inline') blocks. Colours come from classes in the one
// stylesheet; each chart carries its numbers as a table too.

// Chart geometry, in the SVG's own units (it scales to its box).
const (
	chartW, chartH   = 640, 220
	chartLeft        = 40
	chartTop         = 10
	chartBottom      = 30
	chartRight       = 10
	chartLabelTarget = 7 // at most this many x labels
)

// series is one stacked part of every bar: the bucket keys it sums.
type series struct {
	Keys         []string
	Label, Class string
}

// chart is a stacked bar chart ready for the template.
type chart struct {
	ID, Title string
	Series    []series
	// Bars are the buckets, oldest first; Values per series.
	Bars []bar
	Max  int64
	// Rects, XLabels and YTicks are the drawing.
	Rects    []rect
	XLabels  []text
	YTicks   []text
	Width    int
	Height   int
	Baseline int
}

type bar struct {
	Label  string
	Values []int64
	Total  int64
}

type rect struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

type text struct {
	X, Y  float64
	Label string
}

// newChart lays out n buckets of width from since (labelled in format)
// from the store's counts.
func newChart(id, title string, since time.Time, n int, width time.Duration, format string, ss []series, counts []store.Bucket) chart {
	c := chart{ID: id, Title: title, Series: ss, Width: chartW, Height: chartH, Baseline: chartH - chartBottom}
	c.Bars = make([]bar, n)
	for i := range c.Bars {
		c.Bars[i] = bar{Label: since.Add(time.Duration(i) * width).UTC().Format(format), Values: make([]int64, len(ss))}
	}
	for _, b := range counts {
		i := int(b.Start.Sub(since) / width)
		if i < 0 || i >= n {
			continue
		}
		for si, s := range ss {
			if slices.Contains(s.Keys, b.Key) {
				c.Bars[i].Values[si] += b.Count
				c.Bars[i].Total += b.Count
			}
		}
	}
	for _, b := range c.Bars {
		c.Max = max(c.Max, b.Total)
	}
	scaleMax := max(c.Max, 1)
	plotW := float64(chartW - chartLeft - chartRight)
	plotH := float64(chartH - chartTop - chartBottom)
	slot := plotW / float64(n)
	every := max(1, (n+chartLabelTarget-1)/chartLabelTarget)
	for i, b := range c.Bars {
		x := float64(chartLeft) + float64(i)*slot + slot*0.15
		y := float64(chartH - chartBottom)
		for si, v := range b.Values {
			if v == 0 {
				continue
			}
			h := float64(v) / float64(scaleMax) * plotH
			y -= h
			c.Rects = append(c.Rects, rect{X: x, Y: y, W: slot * 0.7, H: h, Class: ss[si].Class,
				Title: fmt.Sprintf("%s: %d %s", b.Label, v, ss[si].Label)})
		}
		if i%every == 0 {
			c.XLabels = append(c.XLabels, text{X: x + slot*0.35, Y: float64(chartH - chartBottom + 18), Label: b.Label})
		}
	}
	c.YTicks = []text{{X: chartLeft - 6, Y: float64(chartH - chartBottom), Label: "0"},
		{X: chartLeft - 6, Y: float64(chartTop + 10), Label: fmt.Sprint(c.Max)}}
	return c
}
