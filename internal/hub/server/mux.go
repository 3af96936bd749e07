package server

// The server half of nexigon-multiplex, the protocol the real nexigon-cli and nexigon-agent
// speak over the Hub's WebSocket (spec §1.3). Written from the upstream sources, read at the
// commit the reference nexigon-cli is built from:
//   nexigon/nexigon@33fb37c crates/libs/nexigon-multiplex/src/frames.rs (frame layout)
//   nexigon/nexigon@33fb37c crates/libs/nexigon-multiplex/src/lib.rs    (channels, credits)
//
// Every frame is one binary WebSocket message: a tag byte, then fixed-size big-endian fields,
// then at most one variable-length field that runs to the end of the message.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Frame tags (frames.rs, define_frame_types!).
const (
	muxHello          byte = 0x00 // magic [16]byte, info ...
	muxClose          byte = 0xFF // reason ...
	muxChannelRequest byte = 0x10 // sender u64, frame credit u32, byte credit u32, endpoint ...
	muxChannelAccept  byte = 0x11 // receiver u64, sender u64, frame credit u32, byte credit u32
	muxChannelReject  byte = 0x12 // receiver u64, reason ...
	muxChannelData    byte = 0x13 // receiver u64, payload ...
	muxChannelAdjust  byte = 0x14 // receiver u64, frame credit u32, byte credit u32
	muxChannelClose   byte = 0x15 // receiver u64, reason ...  (the receiving end is gone)
	muxChannelClosed  byte = 0x17 // receiver u64, reason ...  (the sending end is done)
	muxPing           byte = 0x20
	muxPong           byte = 0x21
)

// muxMagic is PROTOCOL_MAGIC (frames.rs), the first field of Hello.
var muxMagic = [16]byte{27, 27, 46, 134, 44, 205, 244, 157, 82, 109, 227, 13, 167, 171, 225, 140}

// Credits. Upstream (lib.rs Channel::new, ReceiverShared::new) starts every channel with 128
// frames and 16 KiB in both directions, whatever the request or accept frame says, and grows a
// receive window up to CHANNEL_MAX_FRAME_CREDIT and CHANNEL_MAX_BYTE_CREDIT.
const (
	muxInitialFrames = 128
	muxInitialBytes  = 16 << 10
	// muxWindowFrames and muxWindowBytes are the receive window this server grants each
	// channel (at most what a client holds in its buffer for us).
	muxWindowFrames = 128
	muxWindowBytes  = 256 << 10
	// muxMaxChunk bounds one data frame this server sends.
	muxMaxChunk = 64 << 10
	// muxMaxFrame bounds one frame (WebSocket message) a client may send: a data frame
	// within the window, or a control frame with a short endpoint or reason.
	muxMaxFrame = muxWindowBytes + 9
	// muxMaxChannels bounds the channels one connection holds open at once.
	muxMaxChannels = 8
)

// muxFrame is one decoded frame. Which fields are meaningful depends on Tag.
type muxFrame struct {
	Tag byte
	// Channel is the receiver's channel ID, or the sender's for ChannelRequest.
	Channel uint64
	// Sender is the sender's channel ID of ChannelAccept.
	Sender uint64
	// Frames and Bytes are the credits of ChannelRequest, ChannelAccept and ChannelAdjust.
	Frames, Bytes uint32
	// Data is the variable field: Hello's info, ChannelRequest's endpoint, ChannelData's
	// payload, or the reason of Close, ChannelReject, ChannelClose and ChannelClosed. It
	// aliases the decoded message.
	Data []byte
}

// muxFixed is the size of each frame's fixed part (tag included) and whether it has a
// variable field after it (frames.rs MIN_FRAME_SIZE).
func muxFixed(tag byte) (size int, variable, ok bool) {
	switch tag {
	case muxHello:
		return 1 + 16, true, true
	case muxClose:
		return 1, true, true
	case muxChannelRequest:
		return 1 + 8 + 4 + 4, true, true
	case muxChannelAccept:
		return 1 + 8 + 8 + 4 + 4, false, true
	case muxChannelReject, muxChannelData, muxChannelClose, muxChannelClosed:
		return 1 + 8, true, true
	case muxChannelAdjust:
		return 1 + 8 + 4 + 4, false, true
	case muxPing, muxPong:
		return 1, false, true
	}
	return 0, false, false
}

var errMuxFrame = errors.New("invalid multiplex frame")

// parseMuxFrame decodes one frame of at most maxSize bytes. Like upstream's Frame::parse, a
// frame shorter than its fixed part or with an unknown tag is invalid and bytes after a
// fixed-size frame are ignored; unlike upstream, Hello must carry the protocol magic.
func parseMuxFrame(b []byte, maxSize int) (muxFrame, error) {
	if len(b) == 0 {
		return muxFrame{}, fmt.Errorf("%w: empty", errMuxFrame)
	}
	if len(b) > maxSize {
		return muxFrame{}, fmt.Errorf("%w: %d bytes, more than %d", errMuxFrame, len(b), maxSize)
	}
	f := muxFrame{Tag: b[0]}
	size, variable, ok := muxFixed(f.Tag)
	if !ok {
		return muxFrame{}, fmt.Errorf("%w: unknown tag %#02x", errMuxFrame, f.Tag)
	}
	if len(b) < size {
		return muxFrame{}, fmt.Errorf("%w: tag %#02x needs at least %d bytes, got %d", errMuxFrame, f.Tag, size, len(b))
	}
	be := binary.BigEndian
	switch f.Tag {
	case muxHello:
		if [16]byte(b[1:17]) != muxMagic {
			return muxFrame{}, fmt.Errorf("%w: Hello without the nexigon-multiplex magic", errMuxFrame)
		}
	case muxChannelRequest, muxChannelAdjust:
		f.Channel, f.Frames, f.Bytes = be.Uint64(b[1:]), be.Uint32(b[9:]), be.Uint32(b[13:])
	case muxChannelAccept:
		f.Channel, f.Sender, f.Frames, f.Bytes = be.Uint64(b[1:]), be.Uint64(b[9:]), be.Uint32(b[17:]), be.Uint32(b[21:])
	case muxChannelReject, muxChannelData, muxChannelClose, muxChannelClosed:
		f.Channel = be.Uint64(b[1:])
	}
	if variable {
		f.Data = b[size:]
	}
	return f, nil
}

// appendMuxFrame appends f's encoding to dst.
func appendMuxFrame(dst []byte, f muxFrame) []byte {
	be := binary.BigEndian
	dst = append(dst, f.Tag)
	switch f.Tag {
	case muxHello:
		dst = append(dst, muxMagic[:]...)
	case muxChannelRequest, muxChannelAdjust:
		dst = be.AppendUint64(dst, f.Channel)
		dst = be.AppendUint32(dst, f.Frames)
		dst = be.AppendUint32(dst, f.Bytes)
	case muxChannelAccept:
		dst = be.AppendUint64(dst, f.Channel)
		dst = be.AppendUint64(dst, f.Sender)
		dst = be.AppendUint32(dst, f.Frames)
		dst = be.AppendUint32(dst, f.Bytes)
	case muxChannelReject, muxChannelData, muxChannelClose, muxChannelClosed:
		dst = be.AppendUint64(dst, f.Channel)
	}
	if _, variable, _ := muxFixed(f.Tag); variable {
		dst = append(dst, f.Data...)
	}
	return dst
}

// muxViolation is a protocol violation by the client; the connection is closed with it.
type muxViolation string

func (v muxViolation) Error() string { return "protocol violation: " + string(v) }

// muxConn is the server end of one multiplexed WebSocket connection. Clients open channels;
// this server opens none. Each accepted channel is handed to serve in its own goroutine.
type muxConn struct {
	ws    *websocket.Conn
	ctx   context.Context
	stop  context.CancelFunc
	log   *slog.Logger
	idle  time.Duration // a connection that sends no frame for this long is closed
	io    time.Duration // a stalled write, or a stalled half-sent action, is cut after this
	serve func(ctx context.Context, ch *muxChan) error
	// accept reports whether a channel endpoint is served.
	accept func(endpoint string) bool

	wmu sync.Mutex // serializes WebSocket writes

	mu     sync.Mutex
	chans  map[uint64]*muxChan // by this server's channel ID
	nextID uint64
	wg     sync.WaitGroup
}

// muxChan is one channel: an ordered, credit-controlled byte stream in each direction.
type muxChan struct {
	c             *muxConn
	local, remote uint64
	endpoint      string

	mu sync.Mutex
	// Receiving: frames the client sent, not yet read.
	in        [][]byte
	inEOF     bool   // the client sent ChannelClosed
	dead      bool   // the connection is gone
	grantF    uint32 // frames the client may still send
	grantB    uint32 // bytes the client may still send
	freedF    uint32 // frames read but not yet granted back
	freedB    uint32
	readWait  chan struct{}
	readLimit time.Duration // when non-zero, each wait for data is bounded (mid-message)
	// Sending: credits the client granted.
	sendF, sendB uint32
	sendClosed   bool // the client sent ChannelClose: it reads no more
	sendWait     chan struct{}
}

func newMuxConn(ctx context.Context, ws *websocket.Conn, log *slog.Logger, idle, io time.Duration) *muxConn {
	ctx, stop := context.WithCancel(ctx)
	return &muxConn{ws: ws, ctx: ctx, stop: stop, log: log, idle: idle, io: io, chans: map[uint64]*muxChan{}, nextID: 1}
}

// send writes one frame, giving up (and closing the connection) after the I/O timeout.
func (c *muxConn) send(f muxFrame) error {
	msg := appendMuxFrame(make([]byte, 0, 32+len(f.Data)), f)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	ctx, cancel := context.WithTimeout(c.ctx, c.io)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageBinary, msg)
}

// run serves the connection until the client leaves, breaks the protocol or goes idle.
func (c *muxConn) run() error {
	defer c.teardown()
	if err := c.send(muxFrame{Tag: muxHello, Data: []byte("otabake hub serve")}); err != nil {
		return err
	}
	hello := false
	for {
		rctx, cancel := context.WithTimeout(c.ctx, c.idle)
		typ, msg, err := c.ws.Read(rctx)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("no frame for %s", c.idle)
			}
			return err
		}
		if typ != websocket.MessageBinary {
			continue // upstream's WebSocketTransport ignores text messages too
		}
		f, err := parseMuxFrame(msg, muxMaxFrame)
		if err != nil {
			return c.violate(muxViolation(err.Error()))
		}
		if !hello && f.Tag != muxHello {
			return c.violate("the first frame must be Hello")
		}
		hello = true
		done, err := c.handle(f)
		if err != nil {
			var v muxViolation
			if errors.As(err, &v) {
				return c.violate(v)
			}
			return err
		}
		if done {
			c.ws.Close(websocket.StatusNormalClosure, "")
			return nil
		}
	}
}

// violate tells the client why the connection ends and closes it.
func (c *muxConn) violate(v muxViolation) error {
	reason := v.Error()
	c.send(muxFrame{Tag: muxClose, Data: []byte(reason)})
	if len(reason) > 120 { // a close reason must fit a control frame
		reason = reason[:120]
	}
	c.ws.Close(websocket.StatusPolicyViolation, reason)
	return v
}

// handle processes one frame; done means the client closed the connection.
func (c *muxConn) handle(f muxFrame) (done bool, err error) {
	switch f.Tag {
	case muxHello:
		// Upstream answers nothing; a repeated Hello is harmless.
	case muxClose:
		return true, nil
	case muxPing:
		return false, c.send(muxFrame{Tag: muxPong})
	case muxPong:
		// This server sends no pings; a stray pong is ignored.
	case muxChannelRequest:
		return false, c.open(f)
	case muxChannelAccept, muxChannelReject:
		return false, muxViolation("this server requests no channels")
	case muxChannelData:
		ch := c.channel(f.Channel)
		if ch == nil {
			return false, nil // upstream ignores data for unknown (e.g. just closed) channels
		}
		return false, ch.received(f.Data)
	case muxChannelAdjust:
		if ch := c.channel(f.Channel); ch != nil {
			ch.adjust(f.Frames, f.Bytes)
		}
	case muxChannelClose:
		if ch := c.channel(f.Channel); ch != nil {
			ch.mu.Lock()
			ch.sendClosed = true
			ch.mu.Unlock()
			ch.wakeSend()
		}
	case muxChannelClosed:
		if ch := c.channel(f.Channel); ch != nil {
			ch.mu.Lock()
			ch.inEOF = true
			ch.mu.Unlock()
			ch.wakeRead()
		}
	}
	return false, nil
}

func (c *muxConn) channel(id uint64) *muxChan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.chans[id]
}

// open accepts or rejects a client's ChannelRequest.
func (c *muxConn) open(f muxFrame) error {
	endpoint := string(f.Data)
	if c.accept == nil || !c.accept(endpoint) {
		if len(endpoint) > 64 {
			endpoint = endpoint[:64] + "…"
		}
		return c.send(muxFrame{Tag: muxChannelReject, Channel: f.Channel, Data: fmt.Appendf(nil, "unknown endpoint %q", endpoint)})
	}
	c.mu.Lock()
	if len(c.chans) >= muxMaxChannels {
		c.mu.Unlock()
		return c.send(muxFrame{Tag: muxChannelReject, Channel: f.Channel, Data: fmt.Appendf(nil, "too many channels (at most %d)", muxMaxChannels)})
	}
	ch := &muxChan{
		c: c, local: c.nextID, remote: f.Channel, endpoint: endpoint,
		grantF: muxInitialFrames, grantB: muxInitialBytes,
		// What the client offers in its request; upstream's receiver starts with exactly
		// these (128 frames, 16 KiB).
		sendF: f.Frames, sendB: f.Bytes,
		readWait: make(chan struct{}, 1), sendWait: make(chan struct{}, 1),
	}
	c.nextID++
	c.chans[ch.local] = ch
	c.mu.Unlock()
	// Upstream's client assumes the initial credits whatever the accept says; say them.
	if err := c.send(muxFrame{Tag: muxChannelAccept, Channel: ch.remote, Sender: ch.local, Frames: muxInitialFrames, Bytes: muxInitialBytes}); err != nil {
		return err
	}
	// Then widen the window so that a large action input needs fewer round trips.
	ch.mu.Lock()
	addF, addB := uint32(muxWindowFrames-muxInitialFrames), uint32(muxWindowBytes-muxInitialBytes)
	ch.grantF += addF
	ch.grantB += addB
	ch.mu.Unlock()
	if err := c.send(muxFrame{Tag: muxChannelAdjust, Channel: ch.remote, Frames: addF, Bytes: addB}); err != nil {
		return err
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := c.serve(c.ctx, ch)
		if err != nil && c.ctx.Err() == nil {
			c.log.Debug("channel ended", "endpoint", ch.endpoint, "err", err)
		}
		ch.finish(err)
	}()
	return nil
}

// teardown stops every channel and waits for their goroutines.
func (c *muxConn) teardown() {
	c.stop()
	c.mu.Lock()
	chans := make([]*muxChan, 0, len(c.chans))
	for _, ch := range c.chans {
		chans = append(chans, ch)
	}
	c.mu.Unlock()
	for _, ch := range chans {
		ch.mu.Lock()
		ch.dead = true
		ch.mu.Unlock()
		ch.wakeRead()
		ch.wakeSend()
	}
	c.wg.Wait()
	c.ws.CloseNow()
}

func (ch *muxChan) wakeRead() {
	select {
	case ch.readWait <- struct{}{}:
	default:
	}
}

func (ch *muxChan) wakeSend() {
	select {
	case ch.sendWait <- struct{}{}:
	default:
	}
}

// received queues a data frame, which must fit the credit granted to the client (as upstream's
// handle_frame checks).
func (ch *muxChan) received(p []byte) error {
	ch.mu.Lock()
	if ch.grantF == 0 {
		ch.mu.Unlock()
		return muxViolation("no frame credit remaining")
	}
	if uint64(len(p)) > uint64(ch.grantB) {
		ch.mu.Unlock()
		return muxViolation("not enough byte credit")
	}
	ch.grantF--
	ch.grantB -= uint32(len(p))
	if len(p) > 0 && !ch.inEOF {
		ch.in = append(ch.in, p)
	} else {
		ch.freedF++ // an empty or late frame holds nothing; its credit comes back at once
		ch.freedB += uint32(len(p))
	}
	ch.mu.Unlock()
	ch.wakeRead()
	return nil
}

// adjust adds credit the client granted, saturating (a client that overflows its own grants
// only hurts itself).
func (ch *muxChan) adjust(frames, bytes uint32) {
	ch.mu.Lock()
	ch.sendF = uint32(min(uint64(ch.sendF)+uint64(frames), math.MaxUint32))
	ch.sendB = uint32(min(uint64(ch.sendB)+uint64(bytes), math.MaxUint32))
	ch.mu.Unlock()
	ch.wakeSend()
}

var errMuxGone = errors.New("multiplex connection closed")

// setReadTimeout bounds each wait for data (zero: wait as long as the connection lives).
func (ch *muxChan) setReadTimeout(d time.Duration) {
	ch.mu.Lock()
	ch.readLimit = d
	ch.mu.Unlock()
}

// Read reads what the client sent on the channel; io.EOF after ChannelClosed. Read credit is
// granted back (ChannelAdjust) once half of the window has been used, as upstream's receiver
// does, so a client never waits for credit while this side has read everything.
func (ch *muxChan) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		ch.mu.Lock()
		if ch.dead {
			ch.mu.Unlock()
			return 0, errMuxGone
		}
		if len(ch.in) > 0 {
			n := copy(p, ch.in[0])
			ch.in[0] = ch.in[0][n:]
			ch.freedB += uint32(n)
			if len(ch.in[0]) == 0 {
				ch.in[0] = nil
				ch.in = ch.in[1:]
				ch.freedF++
			}
			var adj muxFrame
			if ch.grantF < muxWindowFrames/2 || ch.grantB < muxWindowBytes/2 {
				adj = muxFrame{Tag: muxChannelAdjust, Channel: ch.remote, Frames: ch.freedF, Bytes: ch.freedB}
				ch.grantF += ch.freedF
				ch.grantB += ch.freedB
				ch.freedF, ch.freedB = 0, 0
			}
			ch.mu.Unlock()
			if adj.Tag == muxChannelAdjust && (adj.Frames > 0 || adj.Bytes > 0) {
				if err := ch.c.send(adj); err != nil {
					return n, err
				}
			}
			return n, nil
		}
		if ch.inEOF {
			ch.mu.Unlock()
			return 0, io.EOF
		}
		limit := ch.readLimit
		ch.mu.Unlock()
		if err := ch.wait(ch.readWait, limit); err != nil {
			return 0, fmt.Errorf("read %s channel: %w", ch.endpoint, err)
		}
	}
}

// wait blocks until w is signalled, the connection ends or the limit (if any) passes.
func (ch *muxChan) wait(w chan struct{}, limit time.Duration) error {
	var timeout <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-w:
		return nil
	case <-ch.c.ctx.Done():
		return errMuxGone
	case <-timeout:
		return fmt.Errorf("client stalled for %s", limit)
	}
}

// Write sends p as data frames within the credit the client granted, waiting at most the I/O
// timeout for more credit.
func (ch *muxChan) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		ch.mu.Lock()
		switch {
		case ch.dead:
			ch.mu.Unlock()
			return written, errMuxGone
		case ch.sendClosed:
			ch.mu.Unlock()
			return written, fmt.Errorf("write %s channel: the client closed it", ch.endpoint)
		case ch.sendF == 0 || ch.sendB == 0:
			ch.mu.Unlock()
			if err := ch.wait(ch.sendWait, ch.c.io); err != nil {
				return written, fmt.Errorf("write %s channel: waiting for credit: %w", ch.endpoint, err)
			}
			continue
		}
		n := min(len(p), int(min(ch.sendB, muxMaxChunk)))
		ch.sendF--
		ch.sendB -= uint32(n)
		ch.mu.Unlock()
		if err := ch.c.send(muxFrame{Tag: muxChannelData, Channel: ch.remote, Data: p[:n]}); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// finish ends the channel after serve returns: both directions are closed (ChannelClosed: no
// more data from here; ChannelClose: nothing more is read) and the channel is forgotten.
func (ch *muxChan) finish(err error) {
	c := ch.c
	c.mu.Lock()
	delete(c.chans, ch.local)
	c.mu.Unlock()
	if c.ctx.Err() != nil {
		return
	}
	reason := []byte(nil)
	if err != nil && !errors.Is(err, io.EOF) {
		reason = []byte(err.Error())
		if len(reason) > 256 {
			reason = reason[:256]
		}
	}
	c.send(muxFrame{Tag: muxChannelClosed, Channel: ch.remote, Data: reason})
	c.send(muxFrame{Tag: muxChannelClose, Channel: ch.remote, Data: reason})
}
