// Command mkimage writes Sluice's container image (testbed/ship/image) as a tarball that
// `docker load`, `podman load` and go-containerregistry read, without a container daemon:
//
//	mkimage -binary bin/linux-amd64/sluice -version v0.1.0 -commit <sha> -time <unix seconds> \
//	        -tag sluice:v0.1.0 -o bin/sluice-image.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/sluice-gateway/sluice/testbed/ship/image"
)

func main() {
	var o image.Options
	flag.StringVar(&o.Binary, "binary", "", "the static linux sluice binary")
	flag.StringVar(&o.CACerts, "ca-certs", image.CAPath, "the CA bundle (Debian's ca-certificates package)")
	flag.StringVar(&o.Arch, "arch", "amd64", "the binary's architecture")
	flag.StringVar(&o.Version, "version", "dev", "the release's version")
	flag.StringVar(&o.Commit, "commit", "", "the commit")
	epoch := flag.String("time", "0", "the commit's time in Unix seconds (SOURCE_DATE_EPOCH)")
	tag := flag.String("tag", "sluice:dev", "the image's name and tag in the tarball")
	out := flag.String("o", "sluice-image.tar", "the tarball to write")
	flag.Parse()
	sec, err := strconv.ParseInt(*epoch, 10, 64)
	if err != nil {
		fail(fmt.Errorf("-time %q: %w", *epoch, err))
	}
	o.Created = time.Unix(sec, 0).UTC()
	if err := write(o, *tag, *out); err != nil {
		fail(err)
	}
}

func write(o image.Options, tag, out string) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("-tag: %w", err)
	}
	img, err := image.Build(o)
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(out, ref, img); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s %s\n", out, tag, d)
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mkimage:", err)
	os.Exit(1)
}
