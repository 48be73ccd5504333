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
	// The capabilities vocabulary tells clients that fold queries into
	// the URL (Power Query) which filter functions exist, so that they
	// evaluate the others themselves instead of meeting a 501.
	b.WriteString(`<edmx:Reference Uri="https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Capabilities.V1.xml">` +
		`<edmx:Include Namespace="Org.OData.Capabilities.V1" Alias="Capabilities"/></edmx:Reference>` + "\n")
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
	b.WriteString(`<Annotation Term="Capabilities.ConformanceLevel" EnumMember="Capabilities.ConformanceLevelType/Minimal"/>` + "\n")
	b.WriteString(`<Annotation Term="Capabilities.FilterFunctions"><Collection>` +
		`<String>contains</String><String>startswith</String><String>endswith</String></Collection></Annotation>` + "\n")
	b.WriteString(`<Annotation Term="Capabilities.SupportedFormats"><Collection><String>application/json;odata.metadata=minimal</String></Collection></Annotation>` + "\n")
	b.WriteString("</EntityContainer>\n</Schema>\n</edmx:DataServices>\n</edmx:Edmx>\n")
	s.queries.WithLabelValues("metadata", "ok").Inc()
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Header().Set("OData-Version", "4.0")
	_, _ = w.Write([]byte(b.String()))
}
