package configsource

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/engine"
)

// EtcdConfig is a bootstrap file's `config_source "etcd"` block: where an instance finds its
// configuration. It cannot come from etcd itself, so it is the one file each machine keeps.
type EtcdConfig struct {
	Endpoints []string `hcl:"endpoints" json:"endpoints"`
	// Prefix is the key prefix of the fleet's configuration: <prefix>/manifest, <prefix>/chunks/…,
	// <prefix>/status/<instance id>.
	Prefix   string `hcl:"prefix" json:"prefix"`
	Username string `hcl:"username,optional" json:"username"`
	Password string `hcl:"password,optional" json:"password" sluice:"secret"`
	// InstanceID names this instance's status key; default: the host name.
	InstanceID string `hcl:"instance_id,optional" json:"instance_id"`
	// StateDir keeps the bundles this instance loaded, the last good one to start from while etcd
	// is unreachable.
	StateDir    string          `hcl:"state_dir,optional" json:"state_dir"`
	DialTimeout engine.Duration `hcl:"dial_timeout,optional" json:"dial_timeout"`
	// StartTimeout bounds the wait for etcd at start before the last good bundle is used.
	StartTimeout engine.Duration `hcl:"start_timeout,optional" json:"start_timeout"`
	// StatusTTL is the lease of the status key: an instance gone this long disappears from it.
	StatusTTL engine.Duration `hcl:"status_ttl,optional" json:"status_ttl"`
	TLS       *EtcdTLS        `hcl:"tls,block" json:"tls,omitempty"`
	// Dir is the bootstrap file's folder, which relative paths are resolved against.
	Dir string `json:"-"`
}

// EtcdTLS is the client side of TLS to etcd.
type EtcdTLS struct {
	CAFile     string `hcl:"ca_file,optional" json:"ca_file"`
	CertFile   string `hcl:"cert_file,optional" json:"cert_file"`
	KeyFile    string `hcl:"key_file,optional" json:"key_file"`
	ServerName string `hcl:"server_name,optional" json:"server_name"`
}

// SetDefaults fills the block's defaults.
func (c *EtcdConfig) SetDefaults() {
	c.StateDir = "/var/lib/sluice"
	c.DialTimeout = engine.Duration(5 * time.Second)
	c.StartTimeout = engine.Duration(10 * time.Second)
	c.StatusTTL = engine.Duration(15 * time.Second)
}

// Validate checks the block.
func (c *EtcdConfig) Validate() error {
	var errs []error
	if len(c.Endpoints) == 0 {
		errs = append(errs, engine.FieldErr("endpoints", "name at least one etcd endpoint"))
	}
	if c.Prefix == "" || !strings.HasPrefix(c.Prefix, "/") || strings.HasSuffix(c.Prefix, "/") {
		errs = append(errs, engine.FieldErr("prefix", "must start with / and not end with it, e.g. \"/sluice/prod\""))
	}
	if c.Password != "" && c.Username == "" {
		errs = append(errs, engine.FieldErr("password", "needs a username"))
	}
	for _, d := range []struct {
		name string
		v    engine.Duration
	}{{"dial_timeout", c.DialTimeout}, {"start_timeout", c.StartTimeout}, {"status_ttl", c.StatusTTL}} {
		if d.v <= 0 {
			errs = append(errs, engine.FieldErr(d.name, "must be positive"))
		}
	}
	if c.StatusTTL > 0 && c.StatusTTL.D() < 2*time.Second {
		errs = append(errs, engine.FieldErr("status_ttl", "must be at least 2s (etcd's leases count whole seconds)"))
	}
	if c.TLS != nil && (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, engine.FieldErr("tls", "cert_file and key_file go together"))
	}
	return errors.Join(errs...)
}

func (c *EtcdConfig) path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.Dir == "" {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// instanceID is the configured id or the host name.
func (c *EtcdConfig) instanceID() string {
	if c.InstanceID != "" {
		return c.InstanceID
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return fmt.Sprintf("pid-%d", os.Getpid())
	}
	return h
}

// tlsConfig builds the client's TLS settings (nil without a tls block: plain gRPC).
func (c *EtcdConfig) tlsConfig() (*tls.Config, error) {
	if c.TLS == nil {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLS.ServerName}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.path(c.TLS.CAFile))
		if err != nil {
			return nil, fmt.Errorf("etcd tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd tls ca_file %s: no PEM certificate in it", c.TLS.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.path(c.TLS.CertFile), c.path(c.TLS.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("etcd tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
