// Package engine is Sluice's request path: the fasthttp server, the router that picks a pipeline, the
// pipeline loop that runs filters in order and ends in a Terminal, the per-request Ctx with typed Key
// slots, and the Registry through which filter kinds are declared.
//
// engine imports fasthttp (and OpenTelemetry for the spans around each stage) and nothing else of
// Sluice: filters import engine, never each other; the hcl package decodes configuration into the
// plain structs that kinds register here.
package engine
