package stream

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("the zero config (all defaults) is refused: %v", err)
	}
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{MaxSubscriptions: -1}, "MaxSubscriptions"},
		{Config{MaxMessageBytes: 100}, "MaxMessageBytes"},
		{Config{MessageRate: -5}, "MessageRate"},
		{Config{QueueSize: 2}, "QueueSize"},
		{Config{WriteTimeout: time.Millisecond}, "WriteTimeout"},
		{Config{PingInterval: -time.Second}, "PingInterval"},
		{Config{AuthTimeout: time.Nanosecond}, "AuthTimeout"},
		{Config{SourceTimeout: time.Nanosecond}, "SourceTimeout"},
		{Config{AllowedOrigins: []string{"ioc.example.vn"}}, "AllowedOrigins"},
		{Config{AllowedOrigins: []string{"https://ioc.example.vn/app"}}, "AllowedOrigins"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: want an error naming %s, got %v", tc.cfg, tc.field, err)
		}
	}
	if _, err := New(Config{QueueSize: 1}, newMemSource(), testAuth{}, nil, nil); err == nil {
		t.Fatal("New accepted an invalid config")
	}
	if _, err := New(Config{}, nil, testAuth{}, nil, nil); err == nil {
		t.Fatal("New accepted no source")
	}
}
