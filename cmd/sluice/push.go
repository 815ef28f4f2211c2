package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/configsource"
)

func init() {
	commands["push"] = command{summary: "validate a configuration and write it to etcd for a fleet of instances", run: runPush}
}

func runPush(args []string) int {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	path := fs.String("c", "gateway.hcl", "configuration file to push (with the files it reads under its folder)")
	source := fs.String("source", "", "bootstrap file whose config_source \"etcd\" block says where to push (instead of the flags below)")
	endpoints := fs.String("etcd", "", "etcd endpoints, comma-separated (http://127.0.0.1:2379)")
	prefix := fs.String("prefix", "", "key prefix of the fleet's configuration (/sluice/prod)")
	ca := fs.String("etcd-ca", "", "CA certificate file for etcd's TLS")
	cert := fs.String("etcd-cert", "", "client certificate file for etcd")
	key := fs.String("etcd-key", "", "client key file for etcd")
	user := fs.String("etcd-user", "", "etcd user name (the password is read from SLUICE_ETCD_PASSWORD)")
	wait := fs.Duration("wait", 0, "wait this long for every instance's status to report the pushed configuration served or refused")
	if status, ok := parseFlags(fs, args); !ok {
		return status
	}
	if !configArg(fs, path) {
		return 2
	}
	var cfg *configsource.EtcdConfig
	if *source != "" {
		c, ok := loadBootstrap(*source, os.Stderr)
		if !ok {
			return 1
		}
		if c == nil {
			fmt.Fprintf(os.Stderr, "sluice push: %s has no config_source \"etcd\" block\n", *source)
			return 2
		}
		cfg = c
	} else {
		cfg = &configsource.EtcdConfig{}
		cfg.SetDefaults()
		if *endpoints != "" {
			cfg.Endpoints = strings.Split(*endpoints, ",")
		}
		cfg.Prefix, cfg.Username, cfg.Password = *prefix, *user, os.Getenv("SLUICE_ETCD_PASSWORD")
		if *ca != "" || *cert != "" || *key != "" {
			cfg.TLS = &configsource.EtcdTLS{CAFile: *ca, CertFile: *cert, KeyFile: *key}
		}
		if err := cfg.Validate(); err != nil {
			fmt.Fprintln(os.Stderr, "sluice push: --etcd and --prefix (or --source):", err)
			return 2
		}
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	gw, ok := loadAndBuild(*path, os.Stderr, true, quiet)
	if !ok {
		fmt.Fprintln(os.Stderr, "sluice push: nothing pushed")
		return 1
	}
	inputs := gw.Inputs
	_ = gw.Close()
	b, outside, err := configsource.FromDisk(*path, inputs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice push:", err)
		return 1
	}
	for _, p := range outside {
		fmt.Fprintf(os.Stderr, "sluice push: warning: %s is outside the configuration's folder and is not pushed; every instance reads it from its own disk\n", p)
	}
	src, err := configsource.NewEtcd(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{ReplaceAttr: redactAttr})))
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice push:", err)
		return 1
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rev, err := src.Push(ctx, b)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice push:", err)
		return 1
	}
	size := 0
	for _, d := range b.Files {
		size += len(d)
	}
	fmt.Printf("pushed %s: %d file(s), %d bytes, bundle %s at revision %d\n", *path, len(b.Files), size, b.ID[:12], rev)
	if *wait > 0 {
		return waitForFleet(src, b.ID, *wait)
	}
	return 0
}

// waitForFleet prints each instance's answer to the pushed bundle; 1 if one refused it or did not
// answer in time.
func waitForFleet(src *configsource.Etcd, id string, wait time.Duration) int {
	deadline := time.Now().Add(wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		sts, err := src.Statuses(ctx)
		cancel()
		pending := 0
		if err == nil {
			for _, s := range sts {
				if s.Serving != id && s.Refused != id {
					pending++
				}
			}
		}
		if (err == nil && pending == 0) || time.Now().After(deadline) {
			names := make([]string, 0, len(sts))
			for n := range sts {
				names = append(names, n)
			}
			sort.Strings(names)
			status := 0
			for _, n := range names {
				s := sts[n]
				switch {
				case s.Serving == id:
					fmt.Printf("%s: serving\n", n)
				case s.Refused == id:
					fmt.Printf("%s: refused: %s\n", n, s.Error)
					status = 1
				default:
					fmt.Printf("%s: no answer (serving %.12s)\n", n, s.Serving)
					status = 1
				}
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "sluice push: reading the instances' status:", err)
				status = 1
			}
			return status
		}
		time.Sleep(200 * time.Millisecond)
	}
}
