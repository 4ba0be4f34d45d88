package app

import (
	"errors"
	"testing"

	"github.com/vn-ioc/ioc/internal/api"
)

// A token runs at most perToken computations at once, the node at most
// total; a slot freed is taken again.
func TestComputeLimit(t *testing.T) {
	l := newComputeLimit(2, 3)
	var releases []func()
	take := func(key string) error {
		r, err := l.acquire(key)
		if err == nil {
			releases = append(releases, r)
		}
		return err
	}
	tooMany := func(err error) bool {
		var ae *api.Error
		return errors.As(err, &ae) && ae.Code == api.ETOOMANY && ae.RetryAfter == 1
	}
	if take("a") != nil || take("a") != nil {
		t.Fatal("a's first two refused")
	}
	if err := take("a"); !tooMany(err) {
		t.Fatalf("a's third: %v", err)
	}
	if take("b") != nil {
		t.Fatal("b's first refused")
	}
	if err := take("c"); !tooMany(err) {
		t.Fatalf("past the node's total: %v", err)
	}
	releases[0]()
	if take("c") != nil {
		t.Fatal("a freed slot not taken again")
	}
}
