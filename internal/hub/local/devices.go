package local

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/nexid"
)

// GetActor implements hub.Devices. The local Hub acts for one organization, as an
// organization API token would.
func (s *Store) GetActor(ctx context.Context) (hub.Actor, error) {
	var org string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		org = string(tx.Bucket(bMeta).Get(keyOrganization))
		return nil
	})
	if err != nil {
		return hub.Actor{}, fmt.Errorf("get actor: %w", err)
	}
	return hub.Actor{Kind: "OrganizationApiToken", OrganizationID: org}, nil
}

// validDevice refuses what is not a DeviceId (d_ + 22 base-58): every device action's
// device_id is one (nexigon/nexigon crates/libs/nexigon-api/schemas/devices.sidex).
func validDevice(deviceID string) error { return checkID("device ID", nexid.DeviceID, deviceID) }

func validProperty(deviceID, name string) error {
	if err := validDevice(deviceID); err != nil {
		return err
	}
	return hub.ValidName("property name", name, 256)
}

// GetProperty implements hub.Devices.
func (s *Store) GetProperty(ctx context.Context, deviceID, name string) (hub.Property, bool, error) {
	if err := validProperty(deviceID, name); err != nil {
		return hub.Property{}, false, err
	}
	var p *hub.Property
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		p, err = get[hub.Property](tx, bProperties, string(key(deviceID, name)))
		return err
	})
	if err != nil {
		return hub.Property{}, false, fmt.Errorf("get property %s of %s: %w", name, deviceID, err)
	}
	if p == nil {
		return hub.Property{}, false, nil
	}
	return *p, true, nil
}

// SetProperty implements hub.Devices.
func (s *Store) SetProperty(ctx context.Context, deviceID, name string, value json.RawMessage) error {
	_, _, err := s.SetPropertyIf(ctx, deviceID, name, value, false, nil)
	return err
}

// SetPropertyResult is the outcome of SetPropertyIf, named after devices_SetProperty's
// output variants.
type SetPropertyResult string

// SetPropertyIf results.
const (
	PropertySet             SetPropertyResult = "Set"
	PropertyVersionConflict SetPropertyResult = "VersionConflict"
	PropertyDeleted         SetPropertyResult = "Deleted"
)

// SetPropertyIf is devices_SetProperty in full: with expectedVersion it is a compare-and-swap
// that reports VersionConflict (with the current version) or Deleted (the property is gone)
// instead of writing.
func (s *Store) SetPropertyIf(ctx context.Context, deviceID, name string, value json.RawMessage, protected bool, expectedVersion *uint64) (SetPropertyResult, uint64, error) {
	if err := validProperty(deviceID, name); err != nil {
		return "", 0, err
	}
	v := bytes.TrimSpace(value)
	if len(v) == 0 || !json.Valid(v) {
		return "", 0, hub.Errorf(hub.KindInvalid, "value of property %q is not valid JSON", name)
	}
	res := PropertySet
	var current uint64
	err := s.update(ctx, func(tx *bolt.Tx) error {
		k := string(key(deviceID, name))
		old, err := get[hub.Property](tx, bProperties, k)
		if err != nil {
			return err
		}
		if expectedVersion != nil {
			switch {
			case old == nil:
				res = PropertyDeleted
				return nil
			case old.Version != *expectedVersion:
				res, current = PropertyVersionConflict, old.Version
				return nil
			}
		}
		p := hub.Property{Name: name, Value: append(json.RawMessage(nil), v...), Protected: protected, Version: 1, LastUpdated: now()}
		if old != nil {
			p.Version = old.Version + 1
		}
		current = p.Version
		return put(tx, bProperties, k, p)
	})
	if err != nil {
		return "", 0, fmt.Errorf("set property %s of %s: %w", name, deviceID, err)
	}
	return res, current, nil
}

// RemoveProperty implements hub.Devices.
func (s *Store) RemoveProperty(ctx context.Context, deviceID, name string) (bool, error) {
	if err := validProperty(deviceID, name); err != nil {
		return false, err
	}
	removed := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bProperties)
		k := key(deviceID, name)
		if b.Get(k) == nil {
			return nil
		}
		removed = true
		return b.Delete(k)
	})
	if err != nil {
		return false, fmt.Errorf("remove property %s of %s: %w", name, deviceID, err)
	}
	return removed, nil
}

// QueryProperties returns every property of a device by name (devices_QueryProperties).
func (s *Store) QueryProperties(ctx context.Context, deviceID string) (map[string]hub.Property, error) {
	if err := validDevice(deviceID); err != nil {
		return nil, err
	}
	out := map[string]hub.Property{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		prefix := key(deviceID, "")
		c := tx.Bucket(bProperties).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var p hub.Property
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("local Hub database: corrupt property %q: %w", k, err)
			}
			out[p.Name] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("query properties of %s: %w", deviceID, err)
	}
	return out, nil
}

var severities = map[hub.Severity]bool{
	hub.SeverityTrace: true, hub.SeverityDebug: true, hub.SeverityInfo: true,
	hub.SeverityWarning: true, hub.SeverityError: true, hub.SeverityCritical: true,
}

// PublishEvents implements hub.Devices. The store keeps the newest Options.MaxEvents events
// per device.
func (s *Store) PublishEvents(ctx context.Context, deviceID string, events []hub.Event) error {
	if err := validDevice(deviceID); err != nil {
		return err
	}
	recv := now()
	recs := make([][]byte, 0, len(events))
	for i, e := range events {
		if !severities[e.Severity] {
			return hub.Errorf(hub.KindInvalid, "event %d: invalid severity %q: want Trace, Debug, Info, Warning, Error or Critical", i, e.Severity)
		}
		// DeviceEvent.category?: 1..128 characters (devices.sidex); empty is absent.
		if len(e.Category) > 128 {
			return hub.Errorf(hub.KindInvalid, "event %d: category is longer than 128 characters", i)
		}
		// DeviceEvent.event_id: DeviceEventId, required and generated by the client
		// (devices.sidex; nexigon-ids DatedRawId).
		if err := checkID(fmt.Sprintf("event %d: event ID", i), nexid.DeviceEventID, e.EventID); err != nil {
			return err
		}
		body, err := normJSON(fmt.Sprintf("event %d body", i), e.Body)
		if err != nil {
			return err
		}
		if body == nil {
			body = json.RawMessage("null")
		}
		e.Body = body
		if e.Attributes == nil {
			e.Attributes = map[string]json.RawMessage{}
		}
		for k, v := range e.Attributes {
			if !json.Valid(v) {
				return hub.Errorf(hub.KindInvalid, "event %d: attribute %q is not valid JSON", i, k)
			}
		}
		if e.EmittedAt.IsZero() {
			e.EmittedAt = recv
		}
		e.ReceivedAt = &recv
		data, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode event %d: %w", i, err)
		}
		recs = append(recs, data)
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bEvents).CreateBucketIfNotExists([]byte(deviceID))
		if err != nil {
			return err
		}
		var last uint64
		for _, data := range recs {
			if last, err = b.NextSequence(); err != nil {
				return err
			}
			if err := b.Put(binary.BigEndian.AppendUint64(nil, last), data); err != nil {
				return err
			}
		}
		// Sequence numbers are dense, so everything at or below last-MaxEvents is surplus.
		if max := uint64(s.opts.MaxEvents); last > max {
			// Collect first: deleting under a moving cursor skips keys.
			var old [][]byte
			c := b.Cursor()
			for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= last-max; k, _ = c.Next() {
				old = append(old, append([]byte(nil), k...))
			}
			for _, k := range old {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("publish events of %s: %w", deviceID, err)
	}
	return nil
}

// QueryEvents implements hub.Devices. limit 0 means the Hub's default of 100.
func (s *Store) QueryEvents(ctx context.Context, deviceID string, limit int) ([]hub.Event, error) {
	if err := validDevice(deviceID); err != nil {
		return nil, err
	}
	if limit == 0 {
		limit = 100
	}
	if limit < 1 || limit > 1000 {
		return nil, hub.Errorf(hub.KindInvalid, "event limit %d: want 1..1000", limit)
	}
	out := []hub.Event{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bEvents).Bucket([]byte(deviceID))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var e hub.Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("local Hub database: corrupt event %x of %s: %w", k, deviceID, err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("query events of %s: %w", deviceID, err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
