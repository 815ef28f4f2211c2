package compress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/sluice-gateway/sluice/engine/ascii"
)

// The encoders are process-wide and pooled per level, so filters built by a reload reuse what
// the previous configuration warmed up, and the number of live encoders follows concurrency
// rather than traffic.

// buffer is a growable byte slice that encoders write into.
type buffer struct{ b []byte }

func (w *buffer) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// bufPool holds output buffers. Buffers that grew past maxPooledBuffer are dropped so one huge
// response does not pin its memory forever.
var bufPool = sync.Pool{New: func() any { return &buffer{b: make([]byte, 0, 16<<10)} }}

const maxPooledBuffer = 1 << 20

func getBuffer() *buffer { b := bufPool.Get().(*buffer); b.b = b.b[:0]; return b }

func putBuffer(b *buffer) {
	if cap(b.b) <= maxPooledBuffer {
		bufPool.Put(b)
	}
}

// encoder compresses whole bodies with one algorithm at one level.
type encoder interface {
	// encode appends the encoding of src to dst.
	encode(dst *buffer, src []byte) error
}

var (
	encMu    sync.Mutex
	encoders = map[string]encoder{}
)

// encoderFor returns the shared encoder for algorithm a at level l.
func encoderFor(a string, l int) (encoder, error) {
	key := fmt.Sprintf("%s/%d", a, l)
	encMu.Lock()
	defer encMu.Unlock()
	if e, ok := encoders[key]; ok {
		return e, nil
	}
	var e encoder
	switch a {
	case Gzip:
		if _, err := gzip.NewWriterLevel(io.Discard, l); err != nil {
			return nil, fmt.Errorf("gzip level %d: %w", l, err)
		}
		e = &gzipEncoder{level: l}
	case Brotli:
		e = &brotliEncoder{level: l}
	case Zstd:
		// EncodeAll is safe for concurrent use and keeps its own pool of block encoders (one per
		// GOMAXPROCS), so one Encoder per level suffices. A one-shot encode sizes the window to
		// the body, keeping memory proportional to what is compressed.
		z, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(l)), zstd.WithEncoderCRC(false))
		if err != nil {
			return nil, fmt.Errorf("zstd level %d: %w", l, err)
		}
		e = &zstdEncoder{z: z}
	default:
		return nil, fmt.Errorf("unknown algorithm %q", a)
	}
	encoders[key] = e
	return e, nil
}

type gzipEncoder struct {
	level int
	pool  sync.Pool
}

func (g *gzipEncoder) encode(dst *buffer, src []byte) error {
	w, _ := g.pool.Get().(*gzip.Writer)
	if w == nil {
		var err error
		if w, err = gzip.NewWriterLevel(dst, g.level); err != nil {
			return err
		}
	} else {
		w.Reset(dst)
	}
	_, err := w.Write(src)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	w.Reset(io.Discard) // drop the reference to dst before pooling
	g.pool.Put(w)
	return err
}

type brotliEncoder struct {
	level int
	pool  sync.Pool
}

func (b *brotliEncoder) encode(dst *buffer, src []byte) error {
	w, _ := b.pool.Get().(*brotli.Writer)
	if w == nil {
		w = brotli.NewWriterLevel(dst, b.level)
	} else {
		w.Reset(dst)
	}
	_, err := w.Write(src)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	w.Reset(nil)
	b.pool.Put(w)
	return err
}

type zstdEncoder struct{ z *zstd.Encoder }

func (z *zstdEncoder) encode(dst *buffer, src []byte) error {
	dst.b = z.z.EncodeAll(src, dst.b)
	return nil
}

// errTooLarge reports a decoded request body over the limit.
var errTooLarge = errors.New("decoded request body exceeds max_body_bytes")

// errUnsupported reports a request Content-Encoding the filter cannot decode.
var errUnsupported = errors.New("unsupported request content coding")

var (
	gzipReaders sync.Pool
	brReaders   sync.Pool
	zstdReaders sync.Pool
)

// decode appends the decoding of src (one coding, lower-case) to dst, failing with errTooLarge
// once more than limit bytes come out. Reading stops there, so a zip bomb costs at most limit
// bytes of output and the CPU to produce them.
func decode(dst *buffer, coding []byte, src []byte, limit int64) error {
	r := bytes.NewReader(src)
	var rd io.Reader
	switch {
	case ascii.EqualFoldLower(coding, Gzip) || ascii.EqualFoldLower(coding, "x-gzip"):
		z, _ := gzipReaders.Get().(*gzip.Reader)
		if z == nil {
			z = new(gzip.Reader)
		}
		defer gzipReaders.Put(z)
		if err := z.Reset(r); err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		z.Multistream(true)
		rd = z
	case ascii.EqualFoldLower(coding, Brotli):
		z, _ := brReaders.Get().(*brotli.Reader)
		if z == nil {
			z = brotli.NewReader(r)
		} else if err := z.Reset(r); err != nil {
			return fmt.Errorf("br: %w", err)
		}
		defer brReaders.Put(z)
		rd = z
	case ascii.EqualFoldLower(coding, Zstd):
		z, _ := zstdReaders.Get().(*zstd.Decoder)
		if z == nil {
			var err error
			// One goroutine-free decoder per pooled value; the window is capped so a frame
			// cannot make the decoder reserve more than that, whatever it declares.
			z, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxWindow(32<<20))
			if err != nil {
				return fmt.Errorf("zstd: %w", err)
			}
		}
		if err := z.Reset(r); err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		defer func() { z.Reset(nil); zstdReaders.Put(z) }()
		rd = z
	default:
		return errUnsupported
	}
	lw := limitedWriter{dst: dst, left: limit}
	if _, err := io.Copy(&lw, rd); err != nil {
		if errors.Is(err, errTooLarge) {
			return err
		}
		return fmt.Errorf("decoding %s request body: %w", coding, err)
	}
	return nil
}

// limitedWriter appends to dst and fails with errTooLarge past left bytes.
type limitedWriter struct {
	dst  *buffer
	left int64
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > w.left {
		return 0, errTooLarge
	}
	w.left -= int64(len(p))
	w.dst.b = append(w.dst.b, p...)
	return len(p), nil
}
