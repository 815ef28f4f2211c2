package configsource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// ChunkSize is the largest value `sluice push` writes: etcd refuses requests over 1.5 MiB by
// default (--max-request-bytes), and a Go guest module alone is 3 MB or more.
const ChunkSize = 1 << 20

// maxChunks bounds a bundle's chunks so that the manifest's transaction, which checks that each
// chunk is there, stays within etcd's default --max-txn-ops (128).
const maxChunks = 120

// Manifest is <prefix>/manifest, written last and in one transaction by `sluice push`: the
// files of a bundle, each as the SHA-256 of its content and of each of its chunks
// (<prefix>/chunks/<sha256>). An instance loads exactly these bytes or nothing.
type Manifest struct {
	Version  int            `json:"version"`
	ID       string         `json:"id"`
	Main     string         `json:"main"`
	Files    []ManifestFile `json:"files"`
	PushedAt time.Time      `json:"pushed_at"`
}

// ManifestFile is one file of a bundle.
type ManifestFile struct {
	Path   string   `json:"path"`
	Size   int      `json:"size"`
	SHA256 string   `json:"sha256"`
	Chunks []string `json:"chunks"`
}

// Status is <prefix>/status/<instance id>, kept under a lease: what an instance serves and what
// it refused last.
type Status struct {
	Instance  string    `json:"instance"`
	Serving   string    `json:"serving"`
	Refused   string    `json:"refused,omitempty"`
	Error     string    `json:"error,omitempty"`
	Connected bool      `json:"connected"`
	At        time.Time `json:"at"`
}

// Etcd is the etcd configuration source.
type Etcd struct {
	cfg    *EtcdConfig
	cli    *clientv3.Client
	log    *slog.Logger
	id     string
	mu     sync.Mutex
	status Status
	lease  clientv3.LeaseID
	wake   chan struct{} // a changed status to write
}

// NewEtcd connects to etcd (lazily: an unreachable etcd is no error here).
func NewEtcd(cfg *EtcdConfig, log *slog.Logger) (*Etcd, error) {
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout.D(),
		TLS:         tc,
		Username:    cfg.Username,
		Password:    cfg.Password,
		// The client's own zap log would repeat every retry while etcd is down; the source logs
		// what matters through the gateway's log.
		Logger:               zap.NewNop(),
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		// gRPC's reconnection backoff grows to 2 minutes by default: an instance would wait that
		// long to see etcd back.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: cfg.DialTimeout.D(),
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	id := cfg.instanceID()
	return &Etcd{cfg: cfg, cli: cli, log: log, id: id, status: Status{Instance: id}, wake: make(chan struct{}, 1)}, nil
}

// Close ends the connection; the status key disappears with its lease (revoked here when etcd
// is reachable).
func (e *Etcd) Close() error {
	e.mu.Lock()
	lease := e.lease
	e.mu.Unlock()
	if lease != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = e.cli.Revoke(ctx, lease)
		cancel()
	}
	return e.cli.Close()
}

func (e *Etcd) key(parts ...string) string { return e.cfg.Prefix + "/" + strings.Join(parts, "/") }

// Current reads the manifest and its chunks; nil without a manifest (nothing pushed yet).
func (e *Etcd) Current(ctx context.Context) (*Bundle, error) {
	resp, err := e.cli.Get(ctx, e.key("manifest"))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", e.key("manifest"), err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return e.load(ctx, resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

// load reads the chunks a manifest names, at the manifest's revision (a later push's garbage
// collection cannot take them away mid-read), and checks every hash.
func (e *Etcd) load(ctx context.Context, manifest []byte, rev int64) (*Bundle, error) {
	var m Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("manifest at revision %d: %w", rev, err)
	}
	if m.Version != 1 {
		return nil, fmt.Errorf("manifest at revision %d has version %d; this sluice reads version 1", rev, m.Version)
	}
	b := &Bundle{Main: m.Main, Files: map[string][]byte{}, Revision: rev}
	for _, f := range m.Files {
		if err := checkPath(f.Path); err != nil {
			return nil, err
		}
		data := make([]byte, 0, f.Size)
		for _, c := range f.Chunks {
			resp, err := e.cli.Get(ctx, e.key("chunks", c), clientv3.WithRev(rev))
			if err != nil {
				return nil, fmt.Errorf("reading chunk %s of %s: %w", c, f.Path, err)
			}
			if len(resp.Kvs) == 0 {
				return nil, fmt.Errorf("chunk %s of %s is missing", c, f.Path)
			}
			v := resp.Kvs[0].Value
			if sum := sha256.Sum256(v); hex.EncodeToString(sum[:]) != c {
				return nil, fmt.Errorf("chunk %s of %s does not match its hash", c, f.Path)
			}
			data = append(data, v...)
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != f.SHA256 || len(data) != f.Size {
			return nil, fmt.Errorf("%s does not match its hash in the manifest", f.Path)
		}
		b.Files[f.Path] = data
	}
	if _, ok := b.Files[b.Main]; !ok {
		return nil, fmt.Errorf("manifest at revision %d: its main file %q is not among its files", rev, m.Main)
	}
	if b.ID = b.hash(); b.ID != m.ID {
		return nil, fmt.Errorf("manifest at revision %d: id %s does not match its files (%s)", rev, m.ID, b.ID)
	}
	return b, nil
}

// Watch applies every manifest written after from's revision (from may be nil: the current one
// first), resuming from the last revision seen when the connection to etcd comes back. It returns
// when ctx ends.
func (e *Etcd) Watch(ctx context.Context, from *Bundle, apply func(*Bundle) error) error {
	go e.keepStatus(ctx)
	var rev int64
	if from != nil {
		rev = from.Revision
	} else {
		for ctx.Err() == nil {
			b, err := e.Current(ctx)
			if err == nil {
				if b != nil {
					e.apply(b, apply)
					rev = b.Revision
				}
				break
			}
			e.setConnected(false)
			e.log.Warn("etcd unavailable; serving the last good configuration", "err", err)
			sleep(ctx, time.Second)
		}
	}
	for ctx.Err() == nil {
		// WithRequireLeader ends the watch when the member loses its cluster instead of waiting on
		// it silently; the loop then watches again from the last revision seen.
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := e.cli.Watch(wctx, e.key("manifest"), clientv3.WithRev(rev+1))
		for wr := range wch {
			if wr.CompactRevision != 0 {
				// The revisions after ours were compacted away: read the current manifest.
				e.log.Warn("etcd compacted past the last manifest seen; reading the current one", "revision", rev)
				if b, err := e.Current(ctx); err == nil && b != nil {
					e.apply(b, apply)
					rev = b.Revision
				}
				break
			}
			if err := wr.Err(); err != nil {
				e.setConnected(false)
				e.log.Warn("etcd watch interrupted; serving the last good configuration", "err", err)
				break
			}
			for _, ev := range wr.Events {
				rev = ev.Kv.ModRevision
				if ev.Type != clientv3.EventTypePut {
					e.log.Warn("the configuration manifest was deleted in etcd; the running configuration stays", "key", string(ev.Kv.Key))
					continue
				}
				b, err := e.load(ctx, ev.Kv.Value, ev.Kv.ModRevision)
				if err != nil {
					e.log.Error("cannot read the pushed configuration; the running one stays", "revision", rev, "err", err)
					e.Refuse(fmt.Sprintf("rev-%d", rev), err.Error())
					continue
				}
				e.apply(b, apply)
			}
		}
		cancel()
		sleep(ctx, time.Second)
	}
	return ctx.Err()
}

func (e *Etcd) apply(b *Bundle, apply func(*Bundle) error) {
	e.mu.Lock()
	serving := e.status.Serving
	e.mu.Unlock()
	if b.ID == serving {
		return
	}
	if err := apply(b); err != nil {
		e.Refuse(b.ID, err.Error())
		return
	}
	e.Serving(b.ID)
}

// Serving records the bundle this instance serves.
func (e *Etcd) Serving(id string) {
	e.mu.Lock()
	e.status.Serving, e.status.Refused, e.status.Error = id, "", ""
	e.mu.Unlock()
	e.poke()
}

// Refuse records a bundle this instance refused and why.
func (e *Etcd) Refuse(id, msg string) {
	e.mu.Lock()
	e.status.Refused, e.status.Error = id, msg
	e.mu.Unlock()
	e.poke()
}

func (e *Etcd) setConnected(ok bool) {
	e.mu.Lock()
	changed := e.status.Connected != ok
	e.status.Connected = ok
	e.mu.Unlock()
	if changed {
		e.poke()
	}
}

func (e *Etcd) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Status is this instance's status, for /readyz.
func (e *Etcd) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.status
	return s
}

// keepStatus writes the status key when the status changes, under a lease kept alive every
// third of its TTL; a lease lost while etcd was away is granted again.
func (e *Etcd) keepStatus(ctx context.Context) {
	ttl := e.cfg.StatusTTL.D()
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	dirty := true
	for {
		e.mu.Lock()
		lease := e.lease
		e.mu.Unlock()
		// The status heartbeat is also how the instance knows whether etcd is reachable: a watch
		// waiting on a lost connection says nothing until it comes back.
		if dirty || lease == 0 {
			err := e.writeStatus(ctx)
			dirty = err != nil
			e.setConnected(err == nil)
		} else {
			kctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout.D())
			_, err := e.cli.KeepAliveOnce(kctx, lease)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				e.mu.Lock()
				e.lease = 0 // expired or unreachable: grant a new one on the next write
				e.mu.Unlock()
				dirty = true
			}
			e.setConnected(err == nil)
		}
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
			dirty = true
		case <-t.C:
		}
	}
}

func (e *Etcd) writeStatus(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout.D())
	defer cancel()
	e.mu.Lock()
	st := e.status
	lease := e.lease
	e.mu.Unlock()
	if lease == 0 {
		g, err := e.cli.Grant(ctx, int64(e.cfg.StatusTTL.D()/time.Second))
		if err != nil {
			return err
		}
		lease = g.ID
		e.mu.Lock()
		e.lease = lease
		e.mu.Unlock()
	}
	st.At = time.Now().UTC()
	v, _ := json.Marshal(st)
	if _, err := e.cli.Put(ctx, e.key("status", e.id), string(v), clientv3.WithLease(lease)); err != nil {
		e.mu.Lock()
		e.lease = 0
		e.mu.Unlock()
		return err
	}
	return nil
}

// Statuses reads every instance's status key (for `sluice push --wait` and tests).
func (e *Etcd) Statuses(ctx context.Context) (map[string]Status, error) {
	resp, err := e.cli.Get(ctx, e.key("status")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := map[string]Status{}
	for _, kv := range resp.Kvs {
		var s Status
		if json.Unmarshal(kv.Value, &s) == nil {
			out[s.Instance] = s
		}
	}
	return out, nil
}

// Push writes a bundle: its chunks first (those already there are skipped), then the manifest,
// in one transaction that also checks every chunk is present. Chunks that neither this manifest
// nor the one it replaces names are then deleted. It returns the manifest's revision.
func (e *Etcd) Push(ctx context.Context, b *Bundle) (int64, error) {
	m := Manifest{Version: 1, ID: b.ID, Main: b.Main, PushedAt: time.Now().UTC()}
	chunks := map[string][]byte{}
	for _, p := range b.paths() {
		data := b.Files[p]
		sum := sha256.Sum256(data)
		f := ManifestFile{Path: p, Size: len(data), SHA256: hex.EncodeToString(sum[:])}
		for off := 0; off < len(data) || off == 0; off += ChunkSize {
			c := data[off:min(off+ChunkSize, len(data))]
			cs := sha256.Sum256(c)
			h := hex.EncodeToString(cs[:])
			f.Chunks = append(f.Chunks, h)
			chunks[h] = c
			if len(data) == 0 {
				break
			}
		}
		m.Files = append(m.Files, f)
	}
	if len(chunks) > maxChunks {
		return 0, fmt.Errorf("the bundle is %d chunks of %d KiB; at most %d fit in one manifest transaction", len(chunks), ChunkSize>>10, maxChunks)
	}
	prev, err := e.cli.Get(ctx, e.key("manifest"))
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", e.key("manifest"), err)
	}
	keep := map[string]bool{}
	for h := range chunks {
		keep[h] = true
	}
	if len(prev.Kvs) > 0 {
		var pm Manifest
		if json.Unmarshal(prev.Kvs[0].Value, &pm) == nil {
			for _, f := range pm.Files {
				for _, c := range f.Chunks {
					keep[c] = true
				}
			}
		}
	}
	have, err := e.cli.Get(ctx, e.key("chunks")+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return 0, fmt.Errorf("listing chunks: %w", err)
	}
	present := map[string]bool{}
	for _, kv := range have.Kvs {
		present[strings.TrimPrefix(string(kv.Key), e.key("chunks")+"/")] = true
	}
	hashes := make([]string, 0, len(chunks))
	for h := range chunks {
		hashes = append(hashes, h)
	}
	sort.Strings(hashes)
	for _, h := range hashes {
		if present[h] {
			continue
		}
		if _, err := e.cli.Put(ctx, e.key("chunks", h), string(chunks[h])); err != nil {
			return 0, fmt.Errorf("writing chunk %s (%d bytes): %w", h, len(chunks[h]), err)
		}
	}
	mv, err := json.Marshal(m)
	if err != nil {
		return 0, err
	}
	var cmps []clientv3.Cmp
	for _, h := range hashes {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(e.key("chunks", h)), ">", 0))
	}
	tr, err := e.cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(e.key("manifest"), string(mv))).Commit()
	if err != nil {
		return 0, fmt.Errorf("writing the manifest: %w", err)
	}
	if !tr.Succeeded {
		return 0, errors.New("a chunk disappeared before the manifest was written (a concurrent push collected it); push again")
	}
	// Garbage: chunks of neither this bundle nor the previous one (which instances may still be
	// reading, at its own revision).
	for h := range present {
		if !keep[h] {
			if _, err := e.cli.Delete(ctx, e.key("chunks", h)); err != nil {
				e.log.Warn("could not delete an unused chunk", "chunk", h, "err", err)
			}
		}
	}
	return tr.Header.Revision, nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

var _ Source = (*Etcd)(nil)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
