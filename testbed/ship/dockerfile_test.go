package ship

import (
	"os"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/testbed/ship/image"
)

// TestDockerfileMatchesImage: the Dockerfile (not built here: no daemon) makes the image make
// image makes: the same user, ports, entrypoint, command, paths and scratch base.
func TestDockerfileMatchesImage(t *testing.T) {
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	want := []string{
		"\nFROM scratch\n",
		"\nUSER " + image.User + "\n",
		"\nEXPOSE " + strings.Join(image.ExposedPorts, " ") + "\n",
		`ENTRYPOINT ["` + image.BinaryPath + `"]`,
		`CMD ["run", "-c", "` + image.ConfigPath + `", "-log-format", "json"]`,
		"SSL_CERT_FILE=" + image.CAPath,
		"CGO_ENABLED=0 go build -trimpath",
		"-tags grpcnotrace -pgo=cmd/sluice/release.pgo",
		"sluice:x:65532:65532:",
	}
	for _, w := range want {
		if !strings.Contains(df, w) {
			t.Errorf("the Dockerfile lacks %q", w)
		}
	}
}
