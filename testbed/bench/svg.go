package main

import (
	"fmt"
	"html"
	"strings"
)

// panel is one group of the chart: a bar per configuration for RPS and for proxy CPU per request.
type panel struct {
	title string
	bars  []bar
}

type bar struct {
	label    string
	kind     string
	rps, cpu float64
	// rpsNote and cpuNote follow the values (ratios to the floor and nginx).
	rpsNote, cpuNote string
}

var kindColor = map[string]string{"nginx": "#3a8f3a", "haproxy": "#2f6db5", "floor": "#8a8a8a", "floor-rm": "#b0b0b0", "floor-st": "#6a6a6a", "sluice": "#e07b1f"}

// chartSVG draws the panels as horizontal bar charts, requests per second on the left and proxy
// CPU µs per request on the right; SVG written by hand, no plotting dependency.
func chartSVG(title string, panels []panel) []byte {
	const (
		width   = 1200
		labelW  = 190
		colW    = 260
		gap     = 240 // room for the value and its ratios
		rowH    = 22
		headH   = 46
		titleH  = 40
		padding = 16
	)
	height := titleH + padding
	for _, p := range panels {
		height += headH + rowH*len(p.bars) + padding
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="26" font-size="16" font-weight="bold">%s</text>`+"\n", padding, html.EscapeString(title))
	y := titleH + padding
	x1 := padding + labelW
	x2 := x1 + colW + gap
	for _, p := range panels {
		var maxR, maxC float64
		for _, br := range p.bars {
			maxR, maxC = max(maxR, br.rps), max(maxC, br.cpu)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", padding, y+16, html.EscapeString(p.title))
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#444">requests per second (higher is better)</text>`+"\n", x1, y+36)
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#444">proxy CPU µs per request (lower is better)</text>`+"\n", x2, y+36)
		y += headH
		for _, br := range p.bars {
			color := kindColor[br.kind]
			if color == "" {
				color = "#999999"
			}
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", x1-8, y+15, html.EscapeString(br.label))
			wr := scale(br.rps, maxR, colW)
			wc := scale(br.cpu, maxC, colW)
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x1, y+3, wr, rowH-6, color)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%.0f<tspan dx="6" fill="#555" font-size="10">%s</tspan></text>`+"\n", float64(x1)+wr+4, y+15, br.rps, html.EscapeString(br.rpsNote))
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x2, y+3, wc, rowH-6, color)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%.1f<tspan dx="6" fill="#555" font-size="10">%s</tspan></text>`+"\n", float64(x2)+wc+4, y+15, br.cpu, html.EscapeString(br.cpuNote))
			y += rowH
		}
		y += padding
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

func scale(v, maxV float64, w int) float64 {
	if maxV <= 0 || v <= 0 {
		return 0
	}
	return v / maxV * float64(w)
}
