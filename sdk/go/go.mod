module github.com/sluice-gateway/sluice/sdk/go

go 1.24
