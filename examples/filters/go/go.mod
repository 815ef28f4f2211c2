module github.com/sluice-gateway/sluice/examples/filters/go

go 1.24

require github.com/sluice-gateway/sluice/sdk/go v0.0.0

replace github.com/sluice-gateway/sluice/sdk/go => ../../../sdk/go
