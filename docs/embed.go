// Package docs embeds the documents the server publishes: the OpenAPI file,
// and the schema page whose tables describe the curated views.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml, served at /api/v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Schema is docs/schema.md: GET /api/v1/schema takes the meaning of each
// column of the curated views from its tables.
//
//go:embed schema.md
var Schema []byte
