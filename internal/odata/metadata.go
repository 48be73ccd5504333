package odata

import (
	"encoding/xml"
	"net/http"
	"strings"

	"github.com/flowgate/flowgate/internal/store"
)

// metadata writes the caller's service description as CSDL XML: one
// entity type and one entity set each, in the Flowgate namespace.
func (s *Service) metadata(w http.ResponseWriter, r *http.Request, m *model) {
	var b strings.Builder
	esc := func(v string) string {
		var e strings.Builder
		_ = xml.EscapeText(&e, []byte(v)) // writes to memory
		return e.String()
	}
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n")
	b.WriteString(`<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">` + "\n")
	b.WriteString(`<edmx:DataServices>` + "\n")
	b.WriteString(`<Schema Namespace="` + namespace + `" xmlns="http://docs.oasis-open.org/odata/ns/edm">` + "\n")
	for _, e := range m.sets {
		b.WriteString(`<EntityType Name="` + esc(e.typeName) + `"><Key>`)
		for _, k := range e.key {
			b.WriteString(`<PropertyRef Name="` + esc(k) + `"/>`)
		}
		b.WriteString("</Key>\n")
		for _, f := range e.all() {
			b.WriteString(`<Property Name="` + esc(f.Name) + `" Type="` + edmType(f.Type) + `"`)
			if !nullable(f) {
				b.WriteString(` Nullable="false"`)
			}
			if f.Type == store.DataTime { // stored to the microsecond
				b.WriteString(` Precision="6"`)
			}
			b.WriteString("/>\n")
		}
		b.WriteString("</EntityType>\n")
	}
	b.WriteString(`<EntityContainer Name="Container">` + "\n")
	for _, e := range m.sets {
		b.WriteString(`<EntitySet Name="` + esc(e.name) + `" EntityType="` + namespace + "." + esc(e.typeName) + `"/>` + "\n")
	}
	b.WriteString("</EntityContainer>\n</Schema>\n</edmx:DataServices>\n</edmx:Edmx>\n")
	s.queries.WithLabelValues("metadata", "ok").Inc()
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Header().Set("OData-Version", "4.0")
	_, _ = w.Write([]byte(b.String()))
}
