package stlv

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// MaxDepth is the deepest segment nesting the decoder accepts, as in Rugix.
const MaxDepth = 32

// Marshal encodes the struct pointed to (or held) by v as the segment tag. Fields are written
// in declaration order, which is what makes our bytes equal Rugix's. A field takes part when it
// has a `stlv:"0x…"` tag; its Go type selects the encoding:
//
//	string             UTF-8 bytes          bool    one byte 00 or 01
//	[]byte             raw bytes            uintN   N/8 big-endian bytes
//	struct             nested segment       *T      optional T (absent when nil)
//	[]T (T not byte)   one atom per element, consecutively
func Marshal(tag Tag, v any) ([]byte, error) {
	rv := reflect.Indirect(reflect.ValueOf(v))
	if rv.Kind() != reflect.Struct {
		return nil, fmt.Errorf("stlv: Marshal of %T: want a struct", v)
	}
	return appendStruct(nil, tag, rv)
}

func appendStruct(dst []byte, tag Tag, v reflect.Value) ([]byte, error) {
	info, err := structInfo(v.Type())
	if err != nil {
		return nil, err
	}
	dst = AppendStart(dst, tag)
	for _, f := range info.fields {
		if dst, err = appendField(dst, f.tag, v.Field(f.index)); err != nil {
			return nil, fmt.Errorf("field %s: %w", f.name, err)
		}
	}
	return AppendEnd(dst, tag), nil
}

func appendField(dst []byte, tag Tag, v reflect.Value) ([]byte, error) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return dst, nil
		}
		return appendField(dst, tag, v.Elem())
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return AppendValue(dst, tag, v.Bytes()), nil
		}
		var err error
		for i := 0; i < v.Len(); i++ {
			if dst, err = appendField(dst, tag, v.Index(i)); err != nil {
				return nil, err
			}
		}
		return dst, nil
	case reflect.Struct:
		return appendStruct(dst, tag, v)
	case reflect.String:
		return AppendValue(dst, tag, []byte(v.String())), nil
	case reflect.Bool:
		b := byte(0)
		if v.Bool() {
			b = 1
		}
		return AppendValue(dst, tag, []byte{b}), nil
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n := int(v.Type().Size())
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], v.Uint())
		return AppendValue(dst, tag, buf[8-n:]), nil
	}
	return nil, fmt.Errorf("stlv: unsupported type %s", v.Type())
}

// Unmarshal decodes data, which must hold exactly one segment tag, into the struct pointed to
// by v. It accepts fields in any order, skips unknown optional tags and rejects unknown
// required tags, repeated non-slice fields, missing non-pointer fields, nesting deeper than
// MaxDepth and trailing bytes. Errors name the offset within data.
func Unmarshal(data []byte, tag Tag, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("stlv: Unmarshal into %T: want a pointer to a struct", v)
	}
	d := decoder{data: data}
	h, err := d.head()
	if err != nil {
		return err
	}
	if h.Kind != Start || h.Tag != tag {
		return fmt.Errorf("offset 0: expected start of segment %s, found %s of %s", tag, h.Kind, h.Tag)
	}
	if err := d.decodeStruct(tag, rv.Elem(), 1); err != nil {
		return err
	}
	if d.off != len(data) {
		return fmt.Errorf("offset %d: %d trailing bytes after segment %s", d.off, len(data)-d.off, tag)
	}
	return nil
}

type decoder struct {
	data []byte
	off  int
}

func (d *decoder) head() (Head, error) {
	h, n, err := ParseHead(d.data[d.off:])
	if err != nil {
		return Head{}, fmt.Errorf("offset %d: %w", d.off, err)
	}
	d.off += n
	return h, nil
}

func (d *decoder) value(h Head) ([]byte, error) {
	if h.Len > uint64(len(d.data)-d.off) {
		return nil, fmt.Errorf("offset %d: value %s of %d bytes: %w", d.off, h.Tag, h.Len, ErrTruncated)
	}
	b := d.data[d.off : d.off+int(h.Len)]
	d.off += int(h.Len)
	return b, nil
}

// skip skips the rest of an atom whose head h was read: a value's bytes or a whole segment.
func (d *decoder) skip(h Head, depth int) error {
	switch h.Kind {
	case Value:
		_, err := d.value(h)
		return err
	case End:
		return nil
	}
	if depth >= MaxDepth {
		return fmt.Errorf("offset %d: segments nested deeper than %d", d.off, MaxDepth)
	}
	for {
		at := d.off
		c, err := d.head()
		if err != nil {
			return err
		}
		if c.Kind == End {
			if c.Tag != h.Tag {
				return fmt.Errorf("offset %d: end of segment %s where segment %s is open", at, c.Tag, h.Tag)
			}
			return nil
		}
		if err := d.skip(c, depth+1); err != nil {
			return err
		}
	}
}

func (d *decoder) decodeStruct(tag Tag, v reflect.Value, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("offset %d: segments nested deeper than %d", d.off, MaxDepth)
	}
	info, err := structInfo(v.Type())
	if err != nil {
		return err
	}
	var seen uint64 // bit i: field i was set
	for {
		at := d.off
		h, err := d.head()
		if err != nil {
			return err
		}
		if h.Kind == End {
			if h.Tag != tag {
				return fmt.Errorf("offset %d: end of segment %s where segment %s is open", at, h.Tag, tag)
			}
			break
		}
		i, ok := info.byTag[h.Tag]
		if !ok {
			if !h.Tag.Optional() {
				return fmt.Errorf("offset %d: unknown tag %s found while decoding %s", at, h.Tag, v.Type().Name())
			}
			if err := d.skip(h, depth); err != nil {
				return err
			}
			continue
		}
		f := info.fields[i]
		fv := v.Field(f.index)
		if !f.repeated && seen&(1<<i) != 0 {
			return fmt.Errorf("offset %d: field %s (%s) of %s appears twice", at, f.name, h.Tag, v.Type().Name())
		}
		seen |= 1 << i
		if err := d.decodeField(h, fv, depth); err != nil {
			return fmt.Errorf("field %s of %s: %w", f.name, v.Type().Name(), err)
		}
	}
	for i, f := range info.fields {
		if seen&(1<<i) == 0 && !f.optional {
			return fmt.Errorf("offset %d: missing value for field %s (%s) of %s", d.off, f.name, f.tag, v.Type().Name())
		}
	}
	return nil
}

func (d *decoder) decodeField(h Head, v reflect.Value, depth int) error {
	at := d.off
	wantSegment := v.Kind() == reflect.Struct ||
		(v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct) ||
		(v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct)
	if wantSegment != (h.Kind == Start) {
		return fmt.Errorf("offset %d: unexpected %s atom %s", at, h.Kind, h.Tag)
	}
	switch v.Kind() {
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		if err := d.decodeField(h, nv.Elem(), depth); err != nil {
			return err
		}
		v.Set(nv)
		return nil
	case reflect.Struct:
		return d.decodeStruct(h.Tag, v, depth+1)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b, err := d.value(h)
			if err != nil {
				return err
			}
			v.SetBytes(append([]byte(nil), b...))
			return nil
		}
		if v.Len() >= maxRepeat {
			return fmt.Errorf("offset %d: more than %d repetitions of %s", at, maxRepeat, h.Tag)
		}
		ev := reflect.New(v.Type().Elem()).Elem()
		if err := d.decodeField(h, ev, depth); err != nil {
			return err
		}
		v.Set(reflect.Append(v, ev))
		return nil
	}
	b, err := d.value(h)
	if err != nil {
		return err
	}
	switch v.Kind() {
	case reflect.String:
		if !utf8.Valid(b) {
			return fmt.Errorf("offset %d: invalid UTF-8 in string %s", at, h.Tag)
		}
		v.SetString(string(b))
	case reflect.Bool:
		if len(b) != 1 || b[0] > 1 {
			return fmt.Errorf("offset %d: invalid boolean %s (%d bytes, want one byte 00 or 01)", at, h.Tag, len(b))
		}
		v.SetBool(b[0] == 1)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n := int(v.Type().Size())
		if len(b) != n {
			return fmt.Errorf("offset %d: integer %s has %d bytes, want %d", at, h.Tag, len(b), n)
		}
		var x uint64
		for _, c := range b {
			x = x<<8 | uint64(c)
		}
		v.SetUint(x)
	default:
		return fmt.Errorf("stlv: unsupported type %s", v.Type())
	}
	return nil
}

// maxRepeat bounds repeated fields so that a hostile input of many tiny atoms cannot make the
// decoder build huge slices of Go values (each costs far more than its 5 encoded bytes).
const maxRepeat = 1 << 16

type fieldInfo struct {
	name     string
	index    int
	tag      Tag
	optional bool // pointer or slice: may be absent
	repeated bool // slice of non-bytes
}

type typeInfo struct {
	fields []fieldInfo
	byTag  map[Tag]int
}

var typeCache sync.Map // reflect.Type -> *typeInfo or error

func structInfo(t reflect.Type) (*typeInfo, error) {
	if c, ok := typeCache.Load(t); ok {
		if err, ok := c.(error); ok {
			return nil, err
		}
		return c.(*typeInfo), nil
	}
	info := &typeInfo{byTag: map[Tag]int{}}
	var err error
	for i := 0; i < t.NumField() && err == nil; i++ {
		sf := t.Field(i)
		s, ok := sf.Tag.Lookup("stlv")
		if !ok {
			continue
		}
		n, perr := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 32)
		if perr != nil {
			err = fmt.Errorf("stlv: %s.%s: bad tag %q", t.Name(), sf.Name, s)
			break
		}
		f := fieldInfo{name: sf.Name, index: i, tag: Tag(n)}
		switch sf.Type.Kind() {
		case reflect.Pointer:
			f.optional = true
		case reflect.Slice:
			if sf.Type.Elem().Kind() != reflect.Uint8 {
				f.optional, f.repeated = true, true
			}
		}
		if _, dup := info.byTag[f.tag]; dup {
			err = fmt.Errorf("stlv: %s: tag %s used twice", t.Name(), f.tag)
		}
		info.byTag[f.tag] = len(info.fields)
		info.fields = append(info.fields, f)
	}
	if err == nil && len(info.fields) > 64 {
		err = fmt.Errorf("stlv: %s has more than 64 fields", t.Name())
	}
	if err != nil {
		typeCache.Store(t, err)
		return nil, err
	}
	typeCache.Store(t, info)
	return info, nil
}
