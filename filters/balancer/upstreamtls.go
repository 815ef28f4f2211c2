package balancer

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/sluice-gateway/sluice/engine"
)

// TLS to targets: the target block's tls, ca_file, server_name, cert_file/key_file (a client
// certificate for upstreams that require one) and insecure_skip_verify.

// validateTLS checks a target block's TLS attributes.
func (t *TargetConfig) validateTLS() []error {
	var errs []error
	needTLS := func(field string, set bool) {
		if set && !t.TLS {
			errs = append(errs, engine.FieldErr(field, "needs tls = true"))
		}
	}
	needTLS("server_name", t.ServerName != "")
	needTLS("cert_file", t.CertFile != "")
	needTLS("key_file", t.KeyFile != "")
	needTLS("insecure_skip_verify", t.InsecureSkipVerify)
	if t.ServerName != "" && strings.ContainsAny(t.ServerName, ":/ \t[]") {
		errs = append(errs, engine.FieldErr("server_name", "%q is not a host name: no port, scheme or path", t.ServerName))
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		field := "cert_file"
		if t.KeyFile == "" {
			field = "key_file"
		}
		errs = append(errs, engine.FieldErr(field, "cert_file and key_file go together: the client certificate and its private key"))
	}
	if t.InsecureSkipVerify && t.TLS {
		if t.CAFile != "" {
			errs = append(errs, engine.FieldErr("ca_file", "has no effect with insecure_skip_verify = true: remove one of them"))
		}
		errs = append(errs, engine.FieldWarn("insecure_skip_verify",
			"the target's certificate is NOT verified: anyone on the path to %s can read and change this traffic; use ca_file (and server_name) instead", t.Address))
	}
	return errs
}

// clientCert reads a target's client certificate and key (cert_file, key_file) through env, so
// that `sluice run --watch` reloads when they change.
func clientCert(tc TargetConfig, env *engine.BuildEnv) (*tls.Certificate, error) {
	if tc.CertFile == "" {
		return nil, nil
	}
	certPEM, err := env.ReadFile(tc.CertFile)
	if err != nil {
		return nil, fmt.Errorf("reading cert_file: %w", err)
	}
	keyPEM, err := env.ReadFile(tc.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("reading key_file: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The parser's message never quotes the key.
		return nil, fmt.Errorf("cert_file %q and key_file %q: %w", tc.CertFile, tc.KeyFile, err)
	}
	return &cert, nil
}

// clientTLS is the TLS configuration for connections to a target, offering protos by ALPN.
func clientTLS(ts tlsSettings, protos []string) *tls.Config {
	conf := &tls.Config{
		ServerName: ts.host,
		RootCAs:    ts.roots,
		MinVersion: tls.VersionTLS12,
		NextProtos: protos,
		// The operator's explicit choice, warned about by validate (validateTLS).
		InsecureSkipVerify: ts.insecure, //nolint:gosec
	}
	if ts.cert != nil {
		conf.Certificates = []tls.Certificate{*ts.cert}
	}
	return conf
}
